-- A customer belongs to the client that signed it up (`POST /v2/api/users/sign-up`): another
-- client of the same partner signing up the same phone number is refused, never handed the
-- customer. NULL for staff users, and for customers signed up before this column existed (the
-- next sign-up of such a customer records its client).
ALTER TABLE users ADD COLUMN signed_up_by TEXT;
