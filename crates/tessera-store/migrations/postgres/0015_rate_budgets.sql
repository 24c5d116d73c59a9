-- Rate budgets every node counts in (see tessera_core::budget): one row per limit and key,
-- holding when the budget is whole again (microseconds since the Unix epoch). A row whose
-- time has passed is the same as none; housekeeping deletes it.
CREATE TABLE rate_budgets (
    key TEXT PRIMARY KEY,
    tat BIGINT NOT NULL
);
CREATE INDEX rate_budgets_by_time ON rate_budgets (tat);
