-- The catalog (packages) as last synced from the config.

-- name: UpsertPackage :exec
INSERT INTO packages (code, name, kind, price_minor, currency, cycles, trial_days, dial_context,
				                      fixed_month_days, exclude_order_day, retired, position, updated_at, decrease, decrease_choice, stock, vendor, model)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, false, $11, $12, $13, $14, $15, $16, $17)
				ON CONFLICT (code) DO UPDATE SET name = $2, kind = $3, price_minor = $4, currency = $5, cycles = $6,
				    trial_days = $7, dial_context = $8, fixed_month_days = $9, exclude_order_day = $10,
				    retired = false, position = $11, updated_at = $12, decrease = $13, decrease_choice = $14,
				    stock = $15, vendor = $16, model = $17;

-- name: RetirePackagesExcept :exec
UPDATE packages SET retired = true, updated_at = @updated_at
			WHERE NOT (code = ANY(@keep::text[])) AND NOT retired;

-- DropUnusedPackagesExcept deletes the packages gone from the config that
-- nothing refers to.
-- name: DropUnusedPackagesExcept :exec
DELETE FROM packages p WHERE NOT (code = ANY(@keep::text[]))
			AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.package_code = p.code)
			AND NOT EXISTS (SELECT 1 FROM lines l WHERE l.package_code = p.code)
			AND NOT EXISTS (SELECT 1 FROM pending_items i WHERE i.package_code = p.code)
			AND NOT EXISTS (SELECT 1 FROM hardware_orders h WHERE h.item_code = p.code);

-- name: ListPackages :many
SELECT code, name, kind, price_minor, currency, cycles, trial_days, dial_context,
		fixed_month_days, exclude_order_day, retired, decrease, decrease_choice, stock, vendor, model FROM packages WHERE @with_retired::boolean OR NOT retired ORDER BY retired, position, code;

-- AllPackages is the whole catalog, retired included, unordered: the
-- change-order planner reads it (also inside provisioning's pipelined
-- state read, through AllPackagesSQL).
-- name: AllPackages :many
SELECT code, name, kind, price_minor, currency, cycles, trial_days, dial_context,
	fixed_month_days, exclude_order_day, retired, decrease, decrease_choice, stock, vendor, model FROM packages;
