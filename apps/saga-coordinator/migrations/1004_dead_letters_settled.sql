-- Dead letters an operator replayed or discarded are deleted once the DLQ stream no longer holds
-- their message (28 days after the action); those still DEAD are kept until someone acts.
CREATE INDEX dead_letters_settled ON dead_letters (status_at) WHERE status <> 'DEAD';
