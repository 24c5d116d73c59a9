-- OpenID Connect id_token_hint: the user a pending request's hint names, checked on every page
-- of the flow (not only at /authorize), so another user's session cannot complete it.
ALTER TABLE authorization_requests ADD COLUMN subject TEXT;
