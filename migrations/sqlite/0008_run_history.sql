-- The admin's runs pages: work items newest first (keyset pages), and the receipts of one work item
-- (its detail page; the plugin filter of the list). The other backend's folder holds the same indexes.
CREATE INDEX IF NOT EXISTS idx_work_items_created ON work_items (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS idx_plugin_events_work_item ON plugin_events (work_item_id, plugin_id);
