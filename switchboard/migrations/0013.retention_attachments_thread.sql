-- depends: 0012.hosted_sessions
-- A thread's attachments by thread: the retention sweep deletes them a chunk at a
-- time in id order, and deleting a thread sets its remaining attachments' thread_id
-- to NULL through the foreign key. Without this index each was a scan of every
-- attachment, once per deleted thread.
CREATE INDEX attachments_thread ON attachments (thread_id, id);
