package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/pbx"
)

// Line is a line as the API shows it (never with its password).
type Line struct {
	ID           string        `json:"id"`
	AccountID    string        `json:"account_id"`
	Extension    int           `json:"extension"`
	Package      string        `json:"package"`
	SIPDomain    string        `json:"sip_domain"`
	SIPUsername  string        `json:"sip_username"`
	CallerID     string        `json:"caller_id"`
	State        string        `json:"state"`
	Registered   bool          `json:"registered"`
	Contacts     []pbx.Contact `json:"contacts"`
	Device       *string       `json:"device_mac"`
	PBXSynced    bool          `json:"pbx_synced"`
	ApplyError   string        `json:"apply_error,omitempty"` // why the PBX refused the last apply
	AppliedAt    *time.Time    `json:"applied_at"`            // last revision recorded as applied (nil: never)
	CreatedAt    time.Time     `json:"created_at"`
	RegisteredAt *time.Time    `json:"registration_updated_at,omitempty"`

	// Numbers are the phone numbers assigned to the line; CallerIDNumber
	// the one presented as its caller id ("" if none).
	Numbers        []string `json:"numbers"`
	CallerIDNumber string   `json:"caller_id_number"`
}

// createLines allocates n lines of pkg with the lowest free extensions. The
// caller holds the account lock, so two confirms never pick one number; the
// partial unique index is the last line of defence.
func (s *Service) createLines(ctx context.Context, tx pgx.Tx, acct Account, pkg string, n int, now time.Time) ([]LineRef, error) {
	exts, err := freeExtensions(ctx, tx, acct, n)
	if err != nil {
		return nil, err
	}
	if len(exts) < n {
		return nil, fault.New(fault.Conflict, "items", "only %d free extensions left in %d–%d", len(exts), acct.ExtFirst, acct.ExtLast)
	}
	out := make([]LineRef, 0, n)
	for i, ext := range exts {
		id := uuid.NewString()
		username := strconv.Itoa(ext)
		pw, err := GeneratePassword()
		if err != nil {
			return nil, err
		}
		sealed, err := s.cipher.Seal(id, pw)
		if err != nil {
			return nil, err
		}
		md5h, shah := HA1(username, acct.SIPDomain, pw)
		// Distinct creation times keep "most recently created" well defined
		// within one confirm.
		created := now.Add(time.Duration(i) * time.Microsecond)
		_, err = tx.Exec(ctx, `INSERT INTO lines (id, account_id, package_code, extension, sip_username, password_enc,
			ha1_md5, ha1_sha256, caller_id, state, changed_at, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active', $10, $10)`,
			id, acct.ID, pkg, ext, username, sealed, md5h, shah, acct.Name, created)
		if store.IsUniqueViolation(err, "") {
			return nil, fault.New(fault.Conflict, "items", "extension %d was taken concurrently; preview again", ext)
		}
		if err != nil {
			return nil, fmt.Errorf("insert line: %w", err)
		}
		out = append(out, LineRef{ID: id, Extension: ext, Package: pkg})
	}
	return out, nil
}

// freeExtensions returns up to n of the lowest numbers of the account's range
// that no live line uses as extension or SIP username. It walks the used
// numbers (bounded by the account's lines), not the range (up to 100,000).
func freeExtensions(ctx context.Context, tx pgx.Tx, acct Account, n int) ([]int, error) {
	rows, err := tx.Query(ctx, `SELECT extension FROM lines WHERE account_id = $1 AND state <> 'deleted'
		UNION SELECT sip_username::int FROM lines WHERE account_id = $1 AND state <> 'deleted' AND sip_username ~ '^[0-9]{1,9}$'
		ORDER BY 1`, acct.ID)
	if err != nil {
		return nil, fmt.Errorf("read used extensions: %w", err)
	}
	used, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, n)
	i := 0
	for ext := acct.ExtFirst; ext <= acct.ExtLast && len(out) < n; ext++ {
		for i < len(used) && used[i] < ext {
			i++
		}
		if i < len(used) && used[i] == ext {
			continue
		}
		out = append(out, ext)
	}
	return out, nil
}

const lineCols = `l.id, l.account_id, l.extension, l.package_code, a.sip_domain, l.sip_username, l.caller_id, l.state,
	l.reg_contacts, l.revision = l.applied_revision, l.apply_error, l.applied_at, l.created_at, l.reg_updated_at,
	(SELECT d.mac FROM device_lines dl JOIN devices d ON d.id = dl.device_id WHERE dl.line_id = l.id),
	coalesce((SELECT array_agg(n.e164 ORDER BY n.e164) FROM numbers n WHERE n.line_id = l.id), '{}'),
	coalesce((SELECT n.e164 FROM numbers n WHERE n.line_id = l.id AND n.caller_id LIMIT 1), '')`

func scanLine(row pgx.Row) (Line, error) {
	var l Line
	var contacts []byte
	err := row.Scan(&l.ID, &l.AccountID, &l.Extension, &l.Package, &l.SIPDomain, &l.SIPUsername, &l.CallerID, &l.State,
		&contacts, &l.PBXSynced, &l.ApplyError, &l.AppliedAt, &l.CreatedAt, &l.RegisteredAt, &l.Device, &l.Numbers, &l.CallerIDNumber)
	if err != nil {
		return l, err
	}
	if err := json.Unmarshal(contacts, &l.Contacts); err != nil {
		return l, err
	}
	l.Registered = pbx.Registered(l.Contacts)
	return l, nil
}

// Lines lists an account's live lines by extension.
func (s *Service) Lines(ctx context.Context, accountID string) ([]Line, error) {
	if _, err := s.Account(ctx, accountID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+lineCols+` FROM lines l JOIN accounts a ON a.id = l.account_id
		WHERE l.account_id = $1 AND l.state <> 'deleted' ORDER BY l.extension`, accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Line{}
	for rows.Next() {
		l, err := scanLine(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// Line returns one live line of the account.
func (s *Service) Line(ctx context.Context, accountID, lineID string) (Line, error) {
	if uuid.Validate(lineID) != nil || uuid.Validate(accountID) != nil {
		return Line{}, fault.New(fault.NotFound, "", "line not found")
	}
	l, err := scanLine(s.pool.QueryRow(ctx, `SELECT `+lineCols+` FROM lines l JOIN accounts a ON a.id = l.account_id
		WHERE l.id = $1 AND l.account_id = $2 AND l.state <> 'deleted'`, lineID, accountID))
	if errors.Is(err, pgx.ErrNoRows) {
		return l, fault.New(fault.NotFound, "", "line not found")
	}
	return l, err
}

// RevealPassword decrypts a line's password for its owner; every reveal is
// recorded in the audit log.
func (s *Service) RevealPassword(ctx context.Context, actor, accountID, lineID string) (string, error) {
	if uuid.Validate(lineID) != nil || uuid.Validate(accountID) != nil {
		return "", fault.New(fault.NotFound, "", "line not found")
	}
	var pw string
	err := store.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		var sealed []byte
		err := tx.QueryRow(ctx, `SELECT password_enc FROM lines WHERE id = $1 AND account_id = $2 AND state <> 'deleted'`, lineID, accountID).Scan(&sealed)
		if errors.Is(err, pgx.ErrNoRows) {
			return fault.New(fault.NotFound, "", "line not found")
		}
		if err != nil {
			return err
		}
		if pw, err = s.cipher.Open(lineID, sealed); err != nil {
			return err
		}
		return audit(ctx, tx, s.clock.Now(), actor, accountID, "line.password.reveal", lineID, nil)
	})
	return pw, err
}

// ResetPassword generates a new password for the line; the old one stops
// working once the PBX follows (the new revision is pushed by the
// reconciler).
func (s *Service) ResetPassword(ctx context.Context, actor, accountID, lineID string) (string, error) {
	if uuid.Validate(lineID) != nil || uuid.Validate(accountID) != nil {
		return "", fault.New(fault.NotFound, "", "line not found")
	}
	pw, err := GeneratePassword()
	if err != nil {
		return "", err
	}
	err = store.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		var username, domain string
		err := tx.QueryRow(ctx, `SELECT l.sip_username, a.sip_domain FROM lines l JOIN accounts a ON a.id = l.account_id
			WHERE l.id = $1 AND l.account_id = $2 AND l.state <> 'deleted' FOR UPDATE OF l`, lineID, accountID).Scan(&username, &domain)
		if errors.Is(err, pgx.ErrNoRows) {
			return fault.New(fault.NotFound, "", "line not found")
		}
		if err != nil {
			return err
		}
		sealed, err := s.cipher.Seal(lineID, pw)
		if err != nil {
			return err
		}
		md5h, shah := HA1(username, domain, pw)
		now := s.clock.Now()
		if _, err := tx.Exec(ctx, `UPDATE lines SET password_enc = $2, ha1_md5 = $3, ha1_sha256 = $4, revision = revision + 1, changed_at = $5
			WHERE id = $1`, lineID, sealed, md5h, shah, now); err != nil {
			return err
		}
		if err := audit(ctx, tx, now, actor, accountID, "line.password.reset", lineID, nil); err != nil {
			return err
		}
		return notifyLines(ctx, tx)
	})
	return pw, err
}

// ChangeExtension gives a line another free number in the account's range.
func (s *Service) ChangeExtension(ctx context.Context, actor, accountID, lineID string, ext int) (Line, error) {
	err := store.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		acct, err := lockAccount(ctx, tx, accountID)
		if err != nil {
			return err
		}
		if ext < acct.ExtFirst || ext > acct.ExtLast {
			return fault.New(fault.Invalid, "extension", "extension must be within %d–%d", acct.ExtFirst, acct.ExtLast)
		}
		now := s.clock.Now()
		tag, err := tx.Exec(ctx, `UPDATE lines SET extension = $3, revision = revision + 1, changed_at = $4
			WHERE id = $1 AND account_id = $2 AND state <> 'deleted'`, lineID, accountID, ext, now)
		if store.IsUniqueViolation(err, "lines_account_extension_key") {
			return fault.New(fault.Conflict, "extension", "extension %d is taken", ext)
		}
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fault.New(fault.NotFound, "", "line not found")
		}
		if err := audit(ctx, tx, now, actor, accountID, "line.extension.change", lineID, map[string]any{"extension": ext}); err != nil {
			return err
		}
		return notifyLines(ctx, tx)
	})
	if err != nil {
		return Line{}, err
	}
	return s.Line(ctx, accountID, lineID)
}

// SetSubscriptionLines suspends or resumes the lines of one subscription
// (billing's dunning calls this through the daemon's wiring), in tx.
func (s *Service) SetSubscriptionLines(ctx context.Context, tx pgx.Tx, subscriptionID string, suspended bool, reason string) (int, error) {
	from, to := "active", "suspended"
	if !suspended {
		from, to = "suspended", "active"
	}
	now := s.clock.Now()
	var accountID string
	err := tx.QueryRow(ctx, `SELECT account_id FROM subscriptions WHERE id = $1`, subscriptionID).Scan(&accountID)
	if err != nil {
		return 0, fmt.Errorf("subscription %s: %w", subscriptionID, err)
	}
	tag, err := tx.Exec(ctx, `UPDATE lines l SET state = $3, revision = revision + 1, changed_at = $4
		FROM subscriptions s WHERE s.id = $1 AND l.account_id = s.account_id AND l.package_code = s.package_code AND l.state = $2`,
		subscriptionID, from, to, now)
	if err != nil {
		return 0, err
	}
	if err := audit(ctx, tx, now, "billing", accountID, "lines."+to, subscriptionID, map[string]any{"reason": reason, "lines": tag.RowsAffected()}); err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), notifyLines(ctx, tx)
}
