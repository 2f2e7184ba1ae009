-- Dead-letter records are deleted by age, like inbox rows, once their message can no longer be
-- redelivered.
CREATE INDEX messaging_dead_letters_dead_at ON messaging_dead_letters (dead_at);
