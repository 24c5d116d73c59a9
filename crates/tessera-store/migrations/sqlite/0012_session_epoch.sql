-- A user's browser sessions end together: a password reset (or `tessera user sessions revoke`)
-- moves the user's session epoch on, and a session is live only while it carries the epoch its
-- user has. A session copies the epoch in the write that creates it, from the same snapshot in
-- which it checks that the password verified at sign-in is still the user's.
ALTER TABLE users ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
