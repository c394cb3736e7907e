-- An administrator's request to end an open SSH session (why, and by whom). The proxy holding
-- the session, in whichever Warden process, sees it at its next check and ends the session.
ALTER TABLE ssh_sessions ADD COLUMN end_requested TEXT;
