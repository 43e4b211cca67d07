-- Where a third-party plugin's code runs, chosen by the operator: `in_process` or `isolated`;
-- NULL follows the server's NITEJAR_PLUGIN_EXECUTION. The other backend's folder holds the same
-- logical schema.
ALTER TABLE plugins ADD COLUMN execution_mode TEXT;
