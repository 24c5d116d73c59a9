-- Inventory listings (tessera client|user|grant list): by partner, account or client, in id
-- order, without a scan of every row.
CREATE INDEX clients_by_partner ON clients (partner_id, id);
CREATE INDEX users_by_partner ON users (partner_id, id);
CREATE INDEX users_by_account ON users (account_id, id) WHERE account_id IS NOT NULL;
CREATE INDEX grants_by_client ON grants (client_id, id);
CREATE INDEX grants_by_user ON grants (user_id, id);
