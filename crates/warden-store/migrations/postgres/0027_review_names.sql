-- An access review campaign's name ("Q1 2027 production access"), as people call it; the
-- campaigns made before it have none (shown by their scope and date).
ALTER TABLE access_reviews ADD COLUMN name TEXT NOT NULL DEFAULT '';
