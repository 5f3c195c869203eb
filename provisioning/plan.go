package provisioning

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/provdb"
)

// Planning a change order is two steps: loadPlanInputs reads what the
// account's state (queueState) leaves out, the numbers the request names;
// planChange then validates and plans the order from those values alone,
// without a context, a transaction or a clock, so that it is table-tested
// (plan_test.go). makePlan (changes.go) runs both.

// planInputs is everything a change order is planned from.
type planInputs struct {
	accountState
	// chosen are the numbers ordered by name, by E.164 (absent: not in
	// the inventory).
	chosen map[string]provdb.ChosenNumberRow
	// free are the first free numbers of each order by prefix.
	free map[prefixQuery][]provdb.FirstFreeNumbersRow
	// owned are the add-ons of the account's numbers the request releases,
	// by E.164 (absent: not the account's).
	owned map[string]string
}

// prefixQuery is an order of numbers by prefix, as looked up.
type prefixQuery struct {
	prefix, addon string
	quantity      int
}

// periodPricer is what the planner asks the Biller: the period a new
// subscription starts in and a package's unit price per period. nil: no
// billing.
type periodPricer interface {
	NewPeriod(acct Account, cycle string, at time.Time) (start, end time.Time)
	PeriodPrice(pkg Package, cycle string) int64
}

// chosenNumberOf is the E.164 number of an order of one chosen number that
// the planner looks up (ok false: the planner refuses the order before).
func chosenNumberOf(o NumberOrder) (string, bool) {
	if o.Number == "" || o.Prefix != "" {
		return "", false
	}
	e, err := ParseE164(o.Number)
	return e, err == nil
}

// prefixQueryOf is the look-up of an order by prefix (ok false: the
// planner refuses the order before).
func prefixQueryOf(o NumberOrder) (prefixQuery, bool) {
	if o.Number != "" || o.Prefix == "" || o.Quantity < 1 || o.Quantity > maxNumbersPerOrder {
		return prefixQuery{}, false
	}
	prefix, err := parsePrefix(o.Prefix)
	return prefixQuery{prefix: prefix, addon: o.Addon, quantity: o.Quantity}, err == nil
}

// loadPlanInputs reads in tx the numbers req orders and releases, as of
// now, beside the state st already read; it reads nothing else.
func loadPlanInputs(ctx context.Context, tx *store.Tx, st *accountState, req ChangeRequest, now time.Time) (*planInputs, error) {
	in := &planInputs{accountState: *st, chosen: map[string]provdb.ChosenNumberRow{},
		free: map[prefixQuery][]provdb.FirstFreeNumbersRow{}, owned: map[string]string{}}
	if !st.found || (len(req.Numbers) == 0 && len(req.ReleaseNumbers) == 0) {
		return in, nil
	}
	q := provdb.New(tx)
	if err := in.loadOrders(ctx, q, req.Numbers, now); err != nil {
		return nil, err
	}
	if err := in.loadReleases(ctx, q, req.ReleaseNumbers); err != nil {
		return nil, err
	}
	return in, nil
}

// loadOrders reads the numbers the orders ask for, as of now.
func (in *planInputs) loadOrders(ctx context.Context, q *provdb.Queries, orders []NumberOrder, now time.Time) error {
	for _, o := range orders {
		if e, ok := chosenNumberOf(o); ok {
			n, err := q.ChosenNumber(ctx, provdb.ChosenNumberParams{Now: now, AccountID: in.acct.ID, E164: e})
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("read number: %w", err)
			}
			if err == nil {
				in.chosen[e] = n
			}
		}
		if pq, ok := prefixQueryOf(o); ok {
			// The first free numbers in order, read through the index and
			// never counted in full: an inventory may hold millions.
			free, err := q.FirstFreeNumbers(ctx, provdb.FirstFreeNumbersParams{Prefix: pq.prefix, Now: now, Addon: pq.addon, Lim: int32(pq.quantity)})
			if err != nil {
				return fmt.Errorf("find free numbers: %w", err)
			}
			in.free[pq] = free
		}
	}
	return nil
}

// loadReleases reads the add-ons of the account's numbers released.
func (in *planInputs) loadReleases(ctx context.Context, q *provdb.Queries, release []string) error {
	for _, raw := range release {
		e, err := ParseE164(raw)
		if err != nil {
			continue // the planner refuses it
		}
		addon, err := q.AccountNumberAddon(ctx, provdb.AccountNumberAddonParams{E164: e, AccountID: &in.acct.ID})
		if errors.Is(err, store.ErrNotFound) {
			continue // not the account's: the planner refuses it
		}
		if err != nil {
			return fmt.Errorf("read number: %w", err)
		}
		in.owned[e] = addon
	}
	return nil
}

// planner is one planChange at work.
type planner struct {
	in  *planInputs
	req ChangeRequest
	pr  periodPricer
	now time.Time
	p   *plan

	byPkg        map[string]*planItem // the plan's items by package
	listed       map[string]bool      // the packages req.Items set
	swappedLines map[string]bool      // the lines req.Swaps move
}

// planChange validates req against in and plans it, priced by pr (nil:
// no billing) as of now. It reads nothing else: the same inputs give the
// same plan or the same error.
func planChange(in *planInputs, req ChangeRequest, pr periodPricer, now time.Time) (*plan, error) {
	if err := checkOrder(in, req, pr != nil, now); err != nil {
		return nil, err
	}
	pl := &planner{in: in, req: req, pr: pr, now: now,
		p:     &plan{acct: in.acct, scheduled: in.scheduled, numberAddons: in.numberAddons},
		byPkg: map[string]*planItem{}, listed: map[string]bool{}, swappedLines: map[string]bool{}}
	for _, step := range []func() error{pl.planItems, pl.planNumbers, pl.planSwaps, pl.planSchedule, pl.planLines} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return pl.p, nil
}

// checkOrder refuses an order whatever it asks: no account, an account
// not active, an empty order, and (priced) a period that began but is not
// invoiced yet.
func checkOrder(in *planInputs, req ChangeRequest, priced bool, now time.Time) error {
	if !in.found {
		return fault.New(fault.NotFound, "", "account not found")
	}
	if in.acct.Status != "active" {
		return fault.New(fault.Conflict, "", "account is %s", in.acct.Status)
	}
	if len(req.Items) == 0 && len(req.Swaps) == 0 && len(req.Numbers) == 0 && len(req.ReleaseNumbers) == 0 {
		return fault.New(fault.Invalid, "items", "items (or swaps) must list at least one package")
	}
	if !priced {
		return nil
	}
	// A period that began but is not invoiced (its renewal is running
	// elsewhere) must not be priced as paid: ask to retry.
	for _, code := range slices.Sorted(maps.Keys(in.subs)) {
		sub := in.subs[code]
		if sub.Quantity > 0 && sub.Status == "active" && !sub.PeriodEnd.After(now) {
			return fault.New(fault.Conflict, "", "the renewal of package %s is being invoiced; try again in a moment", sub.Package)
		}
	}
	return nil
}

// item returns the plan item of package code, adding it on first use;
// cycle (when not "") is the cycle the order asks for, field the request
// field an error names.
func (pl *planner) item(code, cycle, field string) (*planItem, error) {
	if it, ok := pl.byPkg[code]; ok {
		return it, nil
	}
	pkg, ok := pl.in.pkgs[code]
	if !ok {
		return nil, fault.New(fault.Invalid, field, "unknown package %q", code)
	}
	if acct := pl.in.acct; pkg.Currency != acct.Currency {
		return nil, fault.New(fault.Invalid, field, "package %s is sold in %s, the account pays in %s", code, pkg.Currency, acct.Currency)
	}
	it := &planItem{pkg: pkg, sub: pl.in.subs[code]}
	if it.sub != nil {
		it.from, it.cycle = it.sub.Quantity, it.sub.Cycle
	}
	if cycle != "" && it.sub != nil && it.sub.Quantity > 0 && cycle != it.sub.Cycle {
		// A cycle switch: the rest of the old period is credited, a new
		// period of the new cycle charged (see cycles.go).
		it.switchFrom = it.sub.Cycle
	}
	if cycle != "" {
		it.cycle = cycle
	}
	if it.cycle == "" {
		it.cycle = "monthly"
	}
	if _, ok := pkg.Offers(it.cycle); !ok {
		return nil, fault.New(fault.Invalid, strings.Replace(field, ".package", ".cycle", 1), "package %s is not offered %s", code, it.cycle)
	}
	it.to = it.from
	pl.byPkg[code] = it
	pl.p.items = append(pl.p.items, it)
	return it, nil
}

// planItems sets the target quantities req.Items ask for.
func (pl *planner) planItems() error {
	for i, ci := range pl.req.Items {
		if err := pl.planItem(fmt.Sprintf("items[%d]", i), ci); err != nil {
			return err
		}
	}
	return nil
}

func (pl *planner) planItem(field string, ci ChangeItem) error {
	if pl.listed[ci.Package] {
		return fault.New(fault.Invalid, field+".package", "package %q is listed twice", ci.Package)
	}
	pl.listed[ci.Package] = true
	if ci.Effective != "" && ci.Effective != EffectiveNow && ci.Effective != EffectivePeriodEnd {
		return fault.New(fault.Invalid, field+".effective", "effective must be now or period_end")
	}
	if ci.Cycle != "" && !slices.Contains(CycleNames, ci.Cycle) {
		return fault.New(fault.Invalid, field+".cycle", "cycle must be monthly, quarterly, semiannual or annual")
	}
	it, err := pl.item(ci.Package, ci.Cycle, field+".package")
	if err != nil {
		return err
	}
	if ci.Quantity < 0 || ci.Quantity > MaxQuantity {
		return fault.New(fault.Invalid, field+".quantity", "quantity must be between 0 and %d", MaxQuantity)
	}
	if it.pkg.Retired && ci.Quantity > it.from {
		return fault.New(fault.Invalid, field+".package", "package %s is retired: no new lines", ci.Package)
	}
	it.to, it.effective = ci.Quantity, ci.Effective
	for j, id := range ci.RemoveLines {
		l, ok := pl.in.lines[id]
		if !ok || l.Package != ci.Package {
			return fault.New(fault.Invalid, fmt.Sprintf("%s.remove_lines[%d]", field, j), "line %s is not a line of package %s", id, ci.Package)
		}
		it.remove = append(it.remove, l)
	}
	return nil
}

// planNumbers works the request's number orders and releases into the
// plan: each moves its add-on's quantity by one per number.
func (pl *planner) planNumbers() error {
	// An add-on that numbers are sold under follows the numbers held: its
	// quantity cannot be set directly.
	for i, ci := range pl.req.Items {
		if pl.p.numberAddons[ci.Package] {
			return fault.New(fault.Invalid, fmt.Sprintf("items[%d].package", i), "%s bills phone numbers: order numbers with \"numbers\" (a prefix or a chosen number) instead of a quantity", ci.Package)
		}
	}
	chosen := map[string]bool{} // the numbers named so far
	for i, o := range pl.req.Numbers {
		if err := pl.orderNumbers(fmt.Sprintf("numbers[%d]", i), o, chosen); err != nil {
			return err
		}
	}
	for i, raw := range pl.req.ReleaseNumbers {
		if err := pl.releaseNumber(fmt.Sprintf("release_numbers[%d]", i), raw, chosen); err != nil {
			return err
		}
	}
	return nil
}

// orderNumbers plans one number order: a chosen number, or some by prefix.
func (pl *planner) orderNumbers(field string, o NumberOrder, chosen map[string]bool) error {
	var nl NumberLine
	var err error
	switch {
	case o.Number != "" && o.Prefix != "":
		return fault.New(fault.Invalid, field+".prefix", "give a number or a prefix, not both")
	case o.Number != "":
		nl, err = pl.chosenNumber(field, o, chosen)
	case o.Prefix != "":
		nl, err = pl.prefixNumbers(field, o)
	default:
		return fault.New(fault.Invalid, field+".prefix", "give a prefix (with a quantity) or a chosen number")
	}
	if err != nil {
		return err
	}
	if pl.listed[nl.Addon] {
		return fault.New(fault.Invalid, field, "add-on %s is also listed in items", nl.Addon)
	}
	it, err := pl.item(nl.Addon, "", field)
	if err != nil {
		return err
	}
	it.to += nl.Quantity
	pl.p.numbers = append(pl.p.numbers, nl)
	if nl.SetupFeeMinor > 0 {
		pl.p.oneTime = append(pl.p.oneTime, PriceChange{Package: it.pkg, Cycle: it.cycle, To: nl.Quantity, OneTimeMinor: nl.SetupFeeMinor})
	}
	return nil
}

func (pl *planner) chosenNumber(field string, o NumberOrder, chosen map[string]bool) (NumberLine, error) {
	e, err := ParseE164(o.Number)
	if err != nil {
		return NumberLine{}, fault.New(fault.Invalid, field+".number", "%q is not an E.164 number: %v", o.Number, err)
	}
	if o.Quantity != 0 && o.Quantity != 1 {
		return NumberLine{}, fault.New(fault.Invalid, field+".quantity", "a chosen number has quantity 1")
	}
	if chosen[e] {
		return NumberLine{}, fault.New(fault.Invalid, field+".number", "number %s is listed twice", e)
	}
	chosen[e] = true
	n, ok := pl.in.chosen[e]
	if !ok || !n.Free || (n.Kind != NumberLocal && !pl.req.ByOperator) {
		return NumberLine{}, fault.New(fault.Conflict, field+".number", "number %s is not available; pick another free local number", e)
	}
	return NumberLine{Action: "order", Number: e, Quantity: 1, Addon: n.AddonCode, SetupFeeMinor: n.SetupFeeMinor}, nil
}

func (pl *planner) prefixNumbers(field string, o NumberOrder) (NumberLine, error) {
	prefix, err := parsePrefix(o.Prefix)
	if err != nil {
		return NumberLine{}, fault.New(fault.Invalid, field+".prefix", "prefix %v", err)
	}
	if o.Quantity < 1 || o.Quantity > maxNumbersPerOrder {
		return NumberLine{}, fault.New(fault.Invalid, field+".quantity", "quantity must be between 1 and %d", maxNumbersPerOrder)
	}
	nl := NumberLine{Action: "order", Quantity: o.Quantity}
	var first []string
	for _, n := range pl.in.free[prefixQuery{prefix: prefix, addon: o.Addon, quantity: o.Quantity}] {
		first = append(first, n.AddonCode)
		nl.SetupFeeMinor += n.SetupFeeMinor
	}
	if len(first) < o.Quantity {
		return NumberLine{}, fault.New(fault.Conflict, field+".quantity", "only %d free local numbers start with %s", len(first), prefix)
	}
	slices.Sort(first)
	if addons := slices.Compact(first); len(addons) > 1 {
		return NumberLine{}, fault.New(fault.Invalid, field+".addon", "the free numbers starting %s are sold as %v: say which add-on", prefix, addons)
	}
	nl.Prefix, nl.Addon = prefix, first[0]
	return nl, nil
}

func (pl *planner) releaseNumber(field, raw string, chosen map[string]bool) error {
	e, err := ParseE164(raw)
	if err != nil {
		return fault.New(fault.Invalid, field, "%q is not an E.164 number: %v", raw, err)
	}
	if chosen[e] {
		return fault.New(fault.Invalid, field, "number %s is listed twice", e)
	}
	chosen[e] = true
	addon, ok := pl.in.owned[e]
	if !ok {
		return fault.New(fault.Invalid, field, "number %s is not the account's", e)
	}
	it, err := pl.item(addon, "", field)
	if err != nil {
		return err
	}
	it.to--
	pl.p.numbers = append(pl.p.numbers, NumberLine{Action: "release", Number: e, Quantity: 1, Addon: addon})
	return nil
}

// planSwaps moves lines between packages: a swap is a decrease plus an
// increase; the target uses a free seat when it has one, else buys one
// (auto_purchase) or refuses (block).
func (pl *planner) planSwaps() error {
	for i, sw := range pl.req.Swaps {
		if err := pl.planSwap(fmt.Sprintf("swaps[%d]", i), sw); err != nil {
			return err
		}
	}
	return nil
}

func (pl *planner) planSwap(field string, sw Swap) error {
	l, ok := pl.in.lines[sw.Line]
	if !ok {
		return fault.New(fault.Invalid, field+".line", "unknown line %q", sw.Line)
	}
	if pl.swappedLines[sw.Line] || l.Package == sw.Package {
		return fault.New(fault.Invalid, field+".package", "line %s is already on package %s or swapped twice", sw.Line, sw.Package)
	}
	pl.swappedLines[sw.Line] = true
	from, err := pl.item(l.Package, "", field+".line")
	if err != nil {
		return err
	}
	to, err := pl.item(sw.Package, "", field+".package")
	if err != nil {
		return err
	}
	if to.pkg.Retired {
		return fault.New(fault.Invalid, field+".package", "package %s is retired", sw.Package)
	}
	if !pl.listed[l.Package] {
		from.to--
	}
	if !pl.listed[sw.Package] {
		if used := countLines(pl.in.lines, sw.Package) + pendingIn(pl.p.swaps, sw.Package); used >= to.to {
			if pl.in.acct.SeatPreference == "block" {
				return fault.New(fault.Conflict, field+".package", "no free seat on package %s and the account blocks automatic purchase", sw.Package)
			}
			to.to++
		}
	}
	pl.p.swaps = append(pl.p.swaps, swapPlan{line: l, to: sw.Package})
	return nil
}

// planSchedule decides, for each decrease of the plan, whether it waits for
// the period end: the item's "effective", else the package's default. Only
// decreases wait; swaps always happen now; a package with a pending
// scheduled decrease may still go up (the decrease then removes as many
// seats as it said), but takes no other decrease or swap until that one is
// cancelled.
func (pl *planner) planSchedule() error {
	fields := map[string]string{}
	for i, ci := range pl.req.Items {
		fields[ci.Package] = fmt.Sprintf("items[%d]", i)
	}
	swapped := map[string]bool{} // the packages lines are swapped from or to
	for _, sw := range pl.p.swaps {
		swapped[sw.line.Package], swapped[sw.to] = true, true
	}
	released := map[string]bool{} // the add-ons of the numbers released
	for _, nl := range pl.p.numbers {
		if nl.Action == "release" {
			released[nl.Addon] = true
		}
	}
	for _, it := range pl.p.items {
		code := it.pkg.Code
		field, effField := fields[code], fields[code]+".effective"
		if field == "" {
			field, effField = "numbers", "release_effective"
		}
		if err := pl.pendingConflict(it, field, swapped[code]); err != nil {
			return err
		}
		eff := it.effective
		if eff == "" && released[code] {
			eff = pl.req.ReleaseEffective
		}
		atEnd, err := pl.waitsForPeriodEnd(it, eff, effField, swapped[code])
		if err != nil {
			return err
		}
		if !atEnd {
			continue
		}
		if err := pl.scheduleDecrease(it, field); err != nil {
			return err
		}
	}
	return nil
}

// pendingConflict refuses a decrease, a swap or a cycle switch of a
// package with a scheduled decrease pending.
func (pl *planner) pendingConflict(it *planItem, field string, swapped bool) error {
	if it.to >= it.from && !swapped && it.switchFrom == "" {
		return nil
	}
	acct := pl.p.acct
	for _, sc := range pl.p.scheduled {
		if sc.Package == it.pkg.Code {
			return fault.New(fault.Conflict, field, "package %s has a decrease by %d scheduled for %s; cancel it first (DELETE /v1/accounts/%s/scheduled-changes/%s)",
				it.pkg.Code, sc.From-sc.To, sc.EffectiveAt.In(acct.Location()).Format(time.RFC3339), acct.ID, sc.ID)
		}
	}
	return nil
}

// waitsForPeriodEnd tells whether item it, asked to take effect eff (""
// the package's default), is a decrease that waits for the period end.
func (pl *planner) waitsForPeriodEnd(it *planItem, eff, effField string, swapped bool) (bool, error) {
	code := it.pkg.Code
	if it.to >= it.from {
		if eff == EffectivePeriodEnd && it.to > it.from {
			return false, fault.New(fault.Invalid, effField, "only a decrease can wait for the period end; %s goes up now", code)
		}
		return false, nil
	}
	def := EffectiveNow
	if it.pkg.Decrease == DecreasePeriodEnd {
		def = EffectivePeriodEnd
	}
	if eff == "" {
		eff = def
	}
	if eff != def && !it.pkg.DecreaseChoice && !pl.req.ByOperator {
		return false, fault.New(fault.Invalid, effField, "package %s decreases %s only", code, def)
	}
	if eff != EffectivePeriodEnd {
		return false, nil
	}
	if swapped || it.switchFrom != "" {
		return false, fault.New(fault.Invalid, effField, "a package a line is swapped from or to, or whose cycle switches, changes now")
	}
	return true, nil
}

// scheduleDecrease makes it a decrease at its period end: nothing changes
// now; atEnd are the lines it would remove now, and the numbers it
// releases wait too.
func (pl *planner) scheduleDecrease(it *planItem, field string) error {
	code := it.pkg.Code
	it.scheduled, it.effectiveAt = true, it.sub.PeriodEnd
	need := 0
	if it.pkg.Kind != "addon" {
		need = countLines(pl.in.lines, code) - it.to
	}
	for _, l := range it.remove {
		it.namedAtEnd = append(it.namedAtEnd, l.ID)
	}
	if len(it.remove) > max(need, 0) {
		return fault.New(fault.Invalid, field+".remove_lines", "%d lines named for removal, only %d go", len(it.remove), max(need, 0))
	}
	if need > 0 {
		it.atEnd = chooseRemovals(pl.in.lines, code, it.remove, need, nil)
	}
	it.remove = nil
	for i := range pl.p.numbers {
		if pl.p.numbers[i].Action == "release" && pl.p.numbers[i].Addon == code {
			pl.p.numbers[i].Effective = EffectivePeriodEnd
		}
	}
	return nil
}

// planLines works out the lines to create and remove and the price
// changes, and checks the lines fit the account's extension range.
func (pl *planner) planLines() error {
	acct := pl.in.acct
	total := len(pl.in.lines)
	for i, it := range pl.p.items {
		if it.scheduled {
			continue // nothing changes before the period end
		}
		if err := pl.linesOf(i, it); err != nil {
			return err
		}
		total += it.create - len(it.remove)
		if it.switchFrom != "" {
			pl.p.changes = append(pl.p.changes, switchChangesOf(pl.pr, pl.now, acct, it)...)
		} else if it.to != it.from || len(it.remove) > 0 || it.create > 0 {
			pl.p.changes = append(pl.p.changes, priceChangeOf(pl.pr, pl.now, acct, it))
		}
	}
	pl.p.changes = append(pl.p.changes, pl.p.oneTime...)
	if size := acct.ExtLast - acct.ExtFirst + 1; total > size {
		return fault.New(fault.Invalid, "items", "%d lines would not fit the extension range %d–%d (%d numbers)", total, acct.ExtFirst, acct.ExtLast, size)
	}
	return nil
}

// linesOf sets the lines item it (the plan's i-th) creates or removes now:
// seats bought get their lines at once, seats given back take the lines
// named, then those chooseRemovals picks.
func (pl *planner) linesOf(i int, it *planItem) error {
	code := it.pkg.Code
	used := countLines(pl.in.lines, code) - swapsFrom(pl.p.swaps, code) + pendingIn(pl.p.swaps, code)
	switch {
	case it.pkg.Kind == "addon":
		// An add-on (numbers, SMS…) is billed, never a line.
		if len(it.remove) > 0 {
			return fault.New(fault.Invalid, fmt.Sprintf("items[%d].remove_lines", i), "%s is an add-on: it has no lines", code)
		}
	case it.to > used:
		it.create = it.to - used
	case it.to < used:
		need := used - it.to
		if len(it.remove) > need {
			return fault.New(fault.Invalid, fmt.Sprintf("items[%d].remove_lines", i), "%d lines named for removal, only %d go", len(it.remove), need)
		}
		it.remove = chooseRemovals(pl.in.lines, code, it.remove, need, pl.swappedLines)
	case len(it.remove) > 0:
		return fault.New(fault.Invalid, fmt.Sprintf("items[%d].remove_lines", i), "no line goes at quantity %d", it.to)
	}
	return nil
}

// priceChangeOf is the seat change of item it for pricing: in the
// subscription's current period, or (pr not nil) in the period a new
// subscription would start in at now.
func priceChangeOf(pr periodPricer, now time.Time, acct Account, it *planItem) PriceChange {
	pc := PriceChange{Package: it.pkg, Cycle: it.cycle, From: it.from, To: it.to}
	if it.sub != nil && it.sub.Quantity > 0 {
		pc.PeriodStart, pc.PeriodEnd, pc.PeriodPriceMinor = it.sub.PeriodStart, it.sub.PeriodEnd, it.sub.PeriodPrice
		pc.Trial = it.sub.Status == "trial"
	} else if pr != nil {
		pc.PeriodStart, pc.PeriodEnd = pr.NewPeriod(acct, it.cycle, now)
		pc.PeriodPriceMinor = pr.PeriodPrice(it.pkg, it.cycle)
		pc.Trial = it.pkg.TrialDays > 0 && (it.sub == nil)
	}
	return pc
}

func (s *Service) priceChange(acct Account, it *planItem) PriceChange {
	return priceChangeOf(s.biller, s.clock.Now(), acct, it)
}

func countLines(lines map[string]lineRow, pkg string) int {
	n := 0
	for _, l := range lines {
		if l.Package == pkg {
			n++
		}
	}
	return n
}

func swapsFrom(sw []swapPlan, pkg string) int {
	n := 0
	for _, s := range sw {
		if s.line.Package == pkg {
			n++
		}
	}
	return n
}

func pendingIn(sw []swapPlan, pkg string) int {
	n := 0
	for _, s := range sw {
		if s.to == pkg {
			n++
		}
	}
	return n
}

// chooseRemovals completes the lines named by the request with the most
// recently created unused ones (no device, not registered), then the most
// recent others.
func chooseRemovals(lines map[string]lineRow, pkg string, named []lineRow, need int, skip map[string]bool) []lineRow {
	out := append([]lineRow(nil), named...)
	chosen := map[string]bool{}
	for _, l := range named {
		chosen[l.ID] = true
	}
	var cands []lineRow
	for _, l := range lines {
		if l.Package == pkg && !chosen[l.ID] && !skip[l.ID] {
			cands = append(cands, l)
		}
	}
	sort.Slice(cands, func(i, j int) bool {
		ui, uj := !cands[i].Device && cands[i].Contacts == 0, !cands[j].Device && cands[j].Contacts == 0
		if ui != uj {
			return ui
		}
		if !cands[i].CreatedAt.Equal(cands[j].CreatedAt) {
			return cands[i].CreatedAt.After(cands[j].CreatedAt)
		}
		return cands[i].Extension > cands[j].Extension
	})
	for _, l := range cands {
		if len(out) >= need {
			break
		}
		out = append(out, l)
	}
	return out
}
