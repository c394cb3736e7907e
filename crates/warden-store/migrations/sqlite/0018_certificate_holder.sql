-- The person an SSH user certificate (or the proxy's session certificate) was issued for, by
-- id: disabling them revokes their certificates by this column, not by reading key id text.
-- Certificates issued before this column have none; they are matched by their key id until
-- they expire.
ALTER TABLE ssh_certificates ADD COLUMN holder_user_id TEXT;
CREATE INDEX ssh_certificates_holder ON ssh_certificates (holder_user_id) WHERE holder_user_id IS NOT NULL;
