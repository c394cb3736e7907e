-- Access reviews may cover API tokens: an item of source `token` is a live token (its name as
-- the subject, `role:ROLE` as the entitlement, its id in `token_id`). `owner` is the person
-- whose access an item is (the subject for a membership or grant; the person a token acts as,
-- else who made it), so that nobody reviews their own.
ALTER TABLE access_review_items DROP CONSTRAINT access_review_items_source_check;
ALTER TABLE access_review_items ADD CONSTRAINT access_review_items_source_check
    CHECK (source IN ('member', 'grant', 'token'));
ALTER TABLE access_review_items ADD COLUMN token_id TEXT;
ALTER TABLE access_review_items ADD COLUMN owner TEXT;
