-- depends: 0005.run_approvals
-- A run whose thread is handed to a person stays open to carry the person's
-- replies to the user's stream; a new message of the user ends it.
ALTER TABLE runs ADD COLUMN attending boolean NOT NULL DEFAULT false;
