-- OpenID Connect (issue 12): an ID-token key lane, sign-in times, and what a request binds to
-- its code (nonce, prompt, the oldest sign-in it accepts, the session).

ALTER TABLE signing_keys ADD COLUMN purpose TEXT NOT NULL DEFAULT 'access';

-- Sessions from before this migration count as signed in long ago: a max_age asks again.
ALTER TABLE sessions ADD COLUMN authenticated_at BIGINT NOT NULL DEFAULT 0;

ALTER TABLE authorization_requests ADD COLUMN nonce TEXT;
ALTER TABLE authorization_requests ADD COLUMN prompt TEXT;
-- The session created on the request's own login form (prompt=login accepts only it).
ALTER TABLE authorization_requests ADD COLUMN login_sid TEXT;
ALTER TABLE authorization_requests ADD COLUMN min_auth_time BIGINT;

ALTER TABLE authorization_codes ADD COLUMN nonce TEXT;
ALTER TABLE authorization_codes ADD COLUMN auth_time BIGINT;
ALTER TABLE authorization_codes ADD COLUMN sid TEXT;
