package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/provdb"
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
func (s *Service) createLines(ctx context.Context, tx *store.Tx, acct Account, pkg string, n int, now time.Time) ([]LineRef, error) {
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
		err = provdb.New(tx).InsertLine(ctx, provdb.InsertLineParams{ID: id, AccountID: acct.ID, PackageCode: pkg, Extension: int32(ext),
			SipUsername: username, PasswordEnc: sealed, Ha1Md5: md5h, Ha1Sha256: shah, CallerID: acct.Name, CreatedAt: created})
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
func freeExtensions(ctx context.Context, tx *store.Tx, acct Account, n int) ([]int, error) {
	used, err := provdb.New(tx).UsedExtensions(ctx, acct.ID)
	if err != nil {
		return nil, fmt.Errorf("read used extensions: %w", err)
	}
	out := make([]int, 0, n)
	i := 0
	for ext := acct.ExtFirst; ext <= acct.ExtLast && len(out) < n; ext++ {
		for i < len(used) && int(used[i]) < ext {
			i++
		}
		if i < len(used) && int(used[i]) == ext {
			continue
		}
		out = append(out, ext)
	}
	return out, nil
}

// lines reads an account's live lines, or with lineID only that one.
func (s *Service) lines(ctx context.Context, accountID string, lineID *string) ([]Line, error) {
	rows, err := s.q.AccountLines(ctx, provdb.AccountLinesParams{AccountID: accountID, ID: lineID})
	if err != nil {
		return nil, err
	}
	out := make([]Line, 0, len(rows))
	for _, r := range rows {
		l := Line{ID: r.ID, AccountID: r.AccountID, Extension: int(r.Extension), Package: r.PackageCode, SIPDomain: r.SipDomain,
			SIPUsername: r.SipUsername, CallerID: r.CallerID, State: r.State, PBXSynced: r.PbxSynced, ApplyError: r.ApplyError,
			AppliedAt: r.AppliedAt, CreatedAt: r.CreatedAt, RegisteredAt: r.RegUpdatedAt, Device: r.DeviceMac, Numbers: r.Numbers,
			CallerIDNumber: r.CallerIDNumber}
		if err := json.Unmarshal(r.RegContacts, &l.Contacts); err != nil {
			return nil, err
		}
		l.Registered = pbx.Registered(l.Contacts)
		out = append(out, l)
	}
	return out, nil
}

// Lines lists an account's live lines by extension.
func (s *Service) Lines(ctx context.Context, accountID string) ([]Line, error) {
	if _, err := s.Account(ctx, accountID); err != nil {
		return nil, err
	}
	return s.lines(ctx, accountID, nil)
}

// Line returns one live line of the account.
func (s *Service) Line(ctx context.Context, accountID, lineID string) (Line, error) {
	if uuid.Validate(lineID) != nil || uuid.Validate(accountID) != nil {
		return Line{}, fault.New(fault.NotFound, "", "line not found")
	}
	ls, err := s.lines(ctx, accountID, &lineID)
	if err != nil {
		return Line{}, err
	}
	if len(ls) == 0 {
		return Line{}, fault.New(fault.NotFound, "", "line not found")
	}
	return ls[0], nil
}

// RevealPassword decrypts a line's password for its owner; every reveal is
// recorded in the audit log.
func (s *Service) RevealPassword(ctx context.Context, actor, accountID, lineID string) (string, error) {
	if uuid.Validate(lineID) != nil || uuid.Validate(accountID) != nil {
		return "", fault.New(fault.NotFound, "", "line not found")
	}
	var pw string
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		sealed, err := provdb.New(tx).LinePassword(ctx, provdb.LinePasswordParams{ID: lineID, AccountID: accountID})
		if errors.Is(err, store.ErrNotFound) {
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
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		q := provdb.New(tx)
		cred, err := q.LockLineCredentials(ctx, provdb.LockLineCredentialsParams{ID: lineID, AccountID: accountID})
		if errors.Is(err, store.ErrNotFound) {
			return fault.New(fault.NotFound, "", "line not found")
		}
		if err != nil {
			return err
		}
		sealed, err := s.cipher.Seal(lineID, pw)
		if err != nil {
			return err
		}
		md5h, shah := HA1(cred.SipUsername, cred.SipDomain, pw)
		now := s.clock.Now()
		if err := q.SetLinePassword(ctx, provdb.SetLinePasswordParams{ID: lineID, PasswordEnc: sealed, Ha1Md5: md5h, Ha1Sha256: shah, ChangedAt: now}); err != nil {
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
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		acct, err := s.lockAccount(ctx, tx, accountID)
		if err != nil {
			return err
		}
		if ext < acct.ExtFirst || ext > acct.ExtLast {
			return fault.New(fault.Invalid, "extension", "extension must be within %d–%d", acct.ExtFirst, acct.ExtLast)
		}
		now := s.clock.Now()
		n, err := provdb.New(tx).SetLineExtension(ctx, provdb.SetLineExtensionParams{ID: lineID, AccountID: accountID, Extension: int32(ext), ChangedAt: now})
		if store.IsUniqueViolation(err, "lines_account_extension_key") {
			return fault.New(fault.Conflict, "extension", "extension %d is taken", ext)
		}
		if err != nil {
			return err
		}
		if n == 0 {
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
