package provisioning

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/provdb"
)

// RequestKinds are the service requests a customer can file: what the
// operator handles by hand ("Get in touch") rather than self-service.
var RequestKinds = []string{"cancel_all", "downgrade", "remove_addon", "remove_number", "port_in", "port_out", "change_owner", "other"}

// RequestStates are a request's states: open → approved | rejected, then
// approved → done.
var RequestStates = []string{string(RequestOpen), string(RequestApproved), string(RequestRejected), string(RequestDone)}

// ServiceRequest is a customer's request and its handling.
type ServiceRequest struct {
	ID        string           `json:"id"`
	AccountID string           `json:"account_id"`
	Kind      string           `json:"kind"`
	State     string           `json:"state"`
	Details   json.RawMessage  `json:"details"`
	Comments  []RequestComment `json:"comments"`
	ChangeID  *string          `json:"change_id"`
	CreatedBy string           `json:"created_by"`
	CreatedAt time.Time        `json:"created_at"`
	UpdatedAt time.Time        `json:"updated_at"`
}

// RequestComment is one message or decision on a request.
type RequestComment struct {
	At    time.Time `json:"at"`
	Actor string    `json:"actor"`
	Text  string    `json:"text"`
	State string    `json:"state,omitempty"` // the state it moved the request to
}

// requestDetails are every kind's details; which fields a kind needs is
// checked by validate.
type requestDetails struct {
	Reason         string            `json:"reason,omitempty"`
	Items          []ChangeItem      `json:"items,omitempty"`
	Numbers        []string          `json:"numbers,omitempty"`
	Country        string            `json:"country,omitempty"`
	Kind           string            `json:"kind,omitempty"`
	Addon          string            `json:"addon,omitempty"`
	LosingCarrier  string            `json:"losing_carrier,omitempty"`
	CarrierAccount string            `json:"carrier_account,omitempty"`
	GainingCarrier string            `json:"gaining_carrier,omitempty"`
	NewOwner       map[string]string `json:"new_owner,omitempty"`
	Text           string            `json:"text,omitempty"`
}

// allowed lists the details fields each kind takes.
var allowed = map[string][]string{
	"cancel_all":    {"reason"},
	"downgrade":     {"items", "reason"},
	"remove_addon":  {"items", "reason"},
	"remove_number": {"numbers", "reason"},
	"port_in":       {"numbers", "country", "kind", "addon", "losing_carrier", "carrier_account", "reason"},
	"port_out":      {"numbers", "gaining_carrier", "reason"},
	"change_owner":  {"new_owner", "reason"},
	"other":         {"text"},
}

// parseDetails decodes and checks a request's details for its kind.
func parseDetails(kind string, raw json.RawMessage) (requestDetails, error) {
	var d requestDetails
	keys := map[string]json.RawMessage{}
	if err := json.Unmarshal(raw, &keys); err != nil {
		return d, fault.New(fault.Invalid, "details", "details must be a JSON object")
	}
	for k := range keys {
		if !slices.Contains(allowed[kind], k) {
			return d, fault.New(fault.Invalid, "details."+k, "a %s request takes %s in its details, not %q", kind, strings.Join(allowed[kind], ", "), k)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return d, fault.New(fault.Invalid, "details."+te.Field, "%s must be a %s", te.Field, te.Type)
		}
		return d, fault.New(fault.Invalid, "details", "details: %v", err)
	}
	need := func(ok bool, field, msg string) error {
		if !ok {
			return fault.New(fault.Invalid, "details."+field, "a %s request needs %s", kind, msg)
		}
		return nil
	}
	var err error
	switch kind {
	case "downgrade", "remove_addon":
		err = need(len(d.Items) > 0, "items", `items: [{"package", "quantity"}] with the quantities wanted`)
	case "remove_number", "port_out":
		err = need(len(d.Numbers) > 0, "numbers", "the numbers")
	case "port_in":
		if err = need(len(d.Numbers) > 0, "numbers", "the numbers to port in"); err == nil {
			err = need(d.LosingCarrier != "", "losing_carrier", "the losing carrier")
		}
		if err == nil {
			err = need(d.Country != "", "country", "the numbers' country (ISO 3166, e.g. FR)")
		}
	case "change_owner":
		err = need(len(d.NewOwner) > 0, "new_owner", "the new owner's identity")
	case "other":
		err = need(strings.TrimSpace(d.Text) != "", "text", "a text")
	}
	if err != nil {
		return d, err
	}
	for i, n := range d.Numbers {
		e, perr := ParseE164(n)
		if perr != nil {
			return d, fault.New(fault.Invalid, fmt.Sprintf("details.numbers[%d]", i), "%q is not an E.164 number: %v", n, perr)
		}
		d.Numbers[i] = e
	}
	for i, it := range d.Items {
		if it.Effective != "" || it.Cycle != "" || len(it.RemoveLines) > 0 {
			return d, fault.New(fault.Invalid, fmt.Sprintf("details.items[%d]", i), "request items give a package and a quantity only")
		}
	}
	return d, nil
}

// requestFromRow is a stored request as the domain sees it.
func requestFromRow(r provdb.ServiceRequest) (ServiceRequest, error) {
	out := ServiceRequest{ID: r.ID, AccountID: r.AccountID, Kind: r.Kind, State: r.State, Details: r.Details,
		ChangeID: r.ChangeID, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if err := json.Unmarshal(r.Comments, &out.Comments); err != nil {
		return ServiceRequest{}, fmt.Errorf("request %s comments: %w", r.ID, err)
	}
	return out, nil
}

// CreateRequest files a request. A number to be removed or ported out is
// marked removal_requested at once (it cannot be moved meanwhile).
func (s *Service) CreateRequest(ctx context.Context, actor, accountID, kind string, details json.RawMessage) (ServiceRequest, error) {
	now := s.clock.Now()
	if !slices.Contains(RequestKinds, kind) {
		return ServiceRequest{}, fault.New(fault.Invalid, "kind", "kind must be one of %s", strings.Join(RequestKinds, ", "))
	}
	d, err := parseDetails(kind, details)
	if err != nil {
		return ServiceRequest{}, err
	}
	clean, _ := json.Marshal(d)
	id := uuid.NewString()
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := s.lockAccount(ctx, tx, accountID); err != nil {
			return err
		}
		if kind == "remove_number" || kind == "port_out" {
			n, err := provdb.New(tx).MarkNumbersForRemoval(ctx, provdb.MarkNumbersForRemovalParams{Numbers: d.Numbers, AccountID: &accountID, UpdatedAt: now})
			if err != nil {
				return fmt.Errorf("mark numbers: %w", err)
			}
			if int(n) != len(d.Numbers) {
				return fault.New(fault.Invalid, "details.numbers", "every number must be the account's and not already being removed")
			}
		}
		if err := provdb.New(tx).InsertRequest(ctx, provdb.InsertRequestParams{ID: id, AccountID: accountID, Kind: kind, Details: clean,
			CreatedBy: actor, CreatedAt: now}); err != nil {
			return fmt.Errorf("store request: %w", err)
		}
		return audit(ctx, tx, now, actor, accountID, "request.open", id, map[string]any{"kind": kind, "details": d})
	})
	if err != nil {
		return ServiceRequest{}, err
	}
	s.requestEvents.WithLabelValues(kind, string(RequestOpen)).Inc()
	return s.Request(ctx, id, "")
}

// Request returns one request; with accountScope, only that account's.
func (s *Service) Request(ctx context.Context, id, accountScope string) (ServiceRequest, error) {
	if uuid.Validate(id) != nil {
		return ServiceRequest{}, fault.New(fault.NotFound, "", "request not found")
	}
	row, err := s.q.GetRequest(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && accountScope != "" && row.AccountID != accountScope) {
		return ServiceRequest{}, fault.New(fault.NotFound, "", "request not found")
	}
	if err != nil {
		return ServiceRequest{}, err
	}
	return requestFromRow(row)
}

// Requests lists requests, newest first: one account's (accountID), or
// all (operator), optionally in one state.
func (s *Service) Requests(ctx context.Context, accountID, state string) ([]ServiceRequest, error) {
	if state != "" && !slices.Contains(RequestStates, state) {
		return nil, fault.New(fault.Invalid, "state", "state must be one of %s", strings.Join(RequestStates, ", "))
	}
	var acct *string
	if accountID != "" {
		if _, err := s.Account(ctx, accountID); err != nil {
			return nil, err
		}
		acct = &accountID
	}
	rows, err := s.q.ListRequests(ctx, provdb.ListRequestsParams{AccountID: acct, State: state})
	if err != nil {
		return nil, err
	}
	list := make([]ServiceRequest, 0, len(rows))
	for _, row := range rows {
		r, err := requestFromRow(row)
		if err != nil {
			return nil, err
		}
		list = append(list, r)
	}
	return list, nil
}

// CommentRequest adds a message to a request, in any state.
func (s *Service) CommentRequest(ctx context.Context, actor, id, accountScope, text string) (ServiceRequest, error) {
	if strings.TrimSpace(text) == "" {
		return ServiceRequest{}, fault.New(fault.Invalid, "text", "text is required")
	}
	return s.moveRequest(ctx, actor, id, accountScope, nil, "", text, nil)
}

// RejectRequest refuses an open request; numbers it marked are kept. An
// approved port-in whose completion failed can be rejected too (the port
// is cancelled): the numbers it imported and still holds leave the
// inventory, others it held are freed.
func (s *Service) RejectRequest(ctx context.Context, actor, id, comment string) (ServiceRequest, error) {
	if strings.TrimSpace(comment) == "" {
		return ServiceRequest{}, fault.New(fault.Invalid, "comment", "a rejection needs a comment for the customer")
	}
	from := []RequestState{RequestOpen}
	if r, err := s.Request(ctx, id, ""); err == nil && r.Kind == "port_in" {
		from = append(from, RequestApproved)
	}
	return s.moveRequest(ctx, actor, id, "", from, RequestRejected, comment, func(tx *store.Tx, r ServiceRequest, d requestDetails) error {
		if r.Kind == "port_in" {
			return s.releasePortIn(ctx, tx, r.AccountID, d.Numbers)
		}
		if r.Kind != "remove_number" && r.Kind != "port_out" {
			return nil
		}
		return provdb.New(tx).UnmarkNumbersForRemoval(ctx, provdb.UnmarkNumbersForRemovalParams{Numbers: d.Numbers, AccountID: &r.AccountID, UpdatedAt: s.clock.Now()})
	})
}

// moveRequest appends a comment and moves the request from one of the
// states from (nil: any; no move) to state, running also in the same
// transaction.
func (s *Service) moveRequest(ctx context.Context, actor, id, accountScope string, from []RequestState, state RequestState, text string,
	also func(*store.Tx, ServiceRequest, requestDetails) error) (ServiceRequest, error) {
	now := s.clock.Now()
	if uuid.Validate(id) != nil {
		return ServiceRequest{}, fault.New(fault.NotFound, "", "request not found")
	}
	var r ServiceRequest
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		q := provdb.New(tx)
		row, err := q.LockRequest(ctx, id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && accountScope != "" && row.AccountID != accountScope) {
			return fault.New(fault.NotFound, "", "request not found")
		}
		if err != nil {
			return err
		}
		if r, err = requestFromRow(row); err != nil {
			return err
		}
		if from != nil && !slices.Contains(from, RequestState(r.State)) {
			names := make([]string, len(from))
			for i, f := range from {
				names[i] = string(f)
			}
			return fault.New(fault.Conflict, "", "the request is %s; it can move to %s only from %s", r.State, state, strings.Join(names, " or "))
		}
		var d requestDetails
		if err := json.Unmarshal(r.Details, &d); err != nil {
			return fmt.Errorf("read details: %w", err)
		}
		if also != nil {
			if err := also(tx, r, d); err != nil {
				return err
			}
		}
		newState := r.State
		if state != "" {
			newState = string(state)
		}
		c, _ := json.Marshal([]RequestComment{{At: now, Actor: actor, Text: text, State: string(state)}})
		if err := q.MoveRequest(ctx, provdb.MoveRequestParams{ID: id, State: newState, Comments: c, UpdatedAt: now}); err != nil {
			return fmt.Errorf("update request: %w", err)
		}
		action := "request.comment"
		if state != "" {
			action = "request." + string(state)
		}
		return audit(ctx, tx, now, actor, r.AccountID, action, id, map[string]any{"kind": r.Kind, "comment": text})
	})
	if err != nil {
		return ServiceRequest{}, err
	}
	if state != "" {
		s.requestEvents.WithLabelValues(r.Kind, string(state)).Inc()
	}
	return s.Request(ctx, id, "")
}

// ApproveRequest approves an open request. A cancellation, downgrade or
// removal becomes a change order confirmed on the customer's behalf, at the
// period end unless effective says "now". The change order is stored on the
// request before it is confirmed, so a retried approval confirms the same
// one (confirming twice returns the first result).
func (s *Service) ApproveRequest(ctx context.Context, actor, id, comment, effective string) (ServiceRequest, error) {
	if effective == "" {
		effective = EffectivePeriodEnd
	}
	if effective != EffectiveNow && effective != EffectivePeriodEnd {
		return ServiceRequest{}, fault.New(fault.Invalid, "effective", "effective must be now or period_end")
	}
	r, err := s.Request(ctx, id, "")
	if err != nil {
		return r, err
	}
	if RequestState(r.State) != RequestOpen {
		return r, fault.New(fault.Conflict, "", "the request is %s; only an open request can be approved", r.State)
	}
	var d requestDetails
	if err := json.Unmarshal(r.Details, &d); err != nil {
		return r, fmt.Errorf("read details: %w", err)
	}
	changeID := ""
	if r.ChangeID != nil {
		changeID = *r.ChangeID
	} else {
		req, err := s.requestChange(ctx, r, d, effective)
		if err != nil {
			return r, err
		}
		if req != nil {
			pv, err := s.PreviewChange(ctx, r.AccountID, *req)
			if err != nil {
				return r, fmt.Errorf("approve: %w", err)
			}
			changeID = pv.ID
			n, err := s.q.SetRequestChange(ctx, provdb.SetRequestChangeParams{ID: id, ChangeID: &changeID})
			if err != nil {
				return r, err
			}
			if n == 0 {
				return s.ApproveRequest(ctx, actor, id, comment, effective) // approved concurrently: use theirs
			}
		}
	}
	if changeID != "" {
		if _, err := s.ConfirmChange(ctx, actor, changeID, r.AccountID); err != nil {
			if fe, ok := fault.As(err); ok && fe.Kind == fault.Conflict {
				// The account changed since: the next approval previews anew.
				_ = s.q.ClearRequestChange(ctx, id)
			}
			return r, fmt.Errorf("approve: %w", err)
		}
	}
	return s.moveRequest(ctx, actor, id, "", []RequestState{RequestOpen}, RequestApproved, comment, nil)
}

// requestChange is the change order approving r makes, or nil if r
// changes no package (port-in, owner change, other).
func (s *Service) requestChange(ctx context.Context, r ServiceRequest, d requestDetails, effective string) (*ChangeRequest, error) {
	req := &ChangeRequest{Items: []ChangeItem{}, ByOperator: true, ReleaseEffective: effective}
	switch r.Kind {
	case "downgrade", "remove_addon":
		for _, it := range d.Items {
			req.Items = append(req.Items, ChangeItem{Package: it.Package, Quantity: it.Quantity, Effective: effective})
		}
	case "remove_number", "port_out":
		req.ReleaseNumbers = d.Numbers
	case "cancel_all":
		subs, err := s.Subscriptions(ctx, r.AccountID)
		if err != nil {
			return nil, err
		}
		for _, sub := range subs {
			if sub.Quantity == 0 {
				continue
			}
			numbers, err := s.q.AccountNumbersOfAddon(ctx, provdb.AccountNumbersOfAddonParams{AccountID: &r.AccountID, AddonCode: sub.Package})
			if err != nil {
				return nil, err
			}
			if len(numbers) > 0 {
				req.ReleaseNumbers = append(req.ReleaseNumbers, numbers...)
				continue
			}
			req.Items = append(req.Items, ChangeItem{Package: sub.Package, Quantity: 0, Effective: effective})
		}
		if len(req.Items) == 0 && len(req.ReleaseNumbers) == 0 {
			return nil, nil // nothing left to cancel
		}
	default:
		return nil, nil
	}
	return req, nil
}

// CompleteRequest marks an approved request done. A port-in's numbers then
// join the inventory and are bought for the account at once.
func (s *Service) CompleteRequest(ctx context.Context, actor, id, comment string) (ServiceRequest, error) {
	r, err := s.Request(ctx, id, "")
	if err != nil {
		return r, err
	}
	if RequestState(r.State) != RequestApproved {
		return r, fault.New(fault.Conflict, "", "the request is %s; only an approved request can be done", r.State)
	}
	if r.Kind == "port_in" {
		if err := s.portIn(ctx, actor, r); err != nil {
			return r, err
		}
	}
	return s.moveRequest(ctx, actor, id, "", []RequestState{RequestApproved}, RequestDone, comment, nil)
}

// portInArea is the area of the numbers a port-in imports.
const portInArea = "port-in"

// releasePortIn drops the holds of a cancelled port-in: numbers it
// imported (area port-in) that nobody holds leave the inventory; numbers
// that were there before are only freed.
func (s *Service) releasePortIn(ctx context.Context, tx *store.Tx, accountID string, numbers []string) error {
	nums := make([]string, 0, len(numbers))
	for _, raw := range numbers {
		if e, err := ParseE164(raw); err == nil {
			nums = append(nums, e)
		}
	}
	q := provdb.New(tx)
	if err := q.DropPortInNumbers(ctx, provdb.DropPortInNumbersParams{Numbers: nums, HeldFor: &accountID, Area: portInArea}); err != nil {
		return fmt.Errorf("remove cancelled port-in numbers: %w", err)
	}
	if err := q.FreeHeldNumbers(ctx, provdb.FreeHeldNumbersParams{Numbers: nums, HeldFor: &accountID}); err != nil {
		return fmt.Errorf("free cancelled port-in numbers: %w", err)
	}
	return nil
}

// portIn imports a port-in request's numbers and orders them for the
// account (an operator's change order: toll-free numbers too). Numbers the
// account holds already (a retried completion) are skipped.
func (s *Service) portIn(ctx context.Context, actor string, r ServiceRequest) error {
	var d requestDetails
	if err := json.Unmarshal(r.Details, &d); err != nil {
		return err
	}
	in := NumberImport{Country: d.Country, Kind: cmp.Or(d.Kind, NumberLocal), Addon: cmp.Or(d.Addon, "local-number"), Numbers: d.Numbers,
		Area: portInArea, HeldFor: r.AccountID}
	if _, err := s.ImportNumbers(ctx, actor, in); err != nil {
		return fmt.Errorf("port-in: %w", err)
	}
	req := ChangeRequest{Items: []ChangeItem{}, ByOperator: true}
	for _, e := range d.Numbers {
		held, err := s.q.AccountHoldsNumber(ctx, provdb.AccountHoldsNumberParams{E164: e, AccountID: &r.AccountID})
		if err != nil {
			return err
		}
		if !held {
			req.Numbers = append(req.Numbers, NumberOrder{Number: e})
		}
	}
	if len(req.Numbers) == 0 {
		return nil
	}
	pv, err := s.PreviewChange(ctx, r.AccountID, req)
	if err != nil {
		return fmt.Errorf("port-in: %w", err)
	}
	if _, err := s.ConfirmChange(ctx, actor, pv.ID, r.AccountID); err != nil {
		return fmt.Errorf("port-in: %w", err)
	}
	return nil
}

// refreshRequestGauge sets pbxd_service_requests from the table.
func (s *Service) refreshRequestGauge(ctx context.Context) {
	rows, err := s.q.CountRequests(ctx)
	if err != nil {
		return
	}
	for _, k := range RequestKinds {
		for _, st := range RequestStates {
			s.requestsByState.WithLabelValues(k, st).Set(0)
		}
	}
	for _, r := range rows {
		s.requestsByState.WithLabelValues(r.Kind, r.State).Set(float64(r.N))
	}
}
