package provisioning

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store/provdb"
)

// The planner's rules, without a database: planChange is given the
// account's state and the numbers the request names, as loadPlanInputs
// would read them, and every case checks the whole plan or the exact
// error (kind, field, message: the API returns them as they are).

var (
	planNow   = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	periodBeg = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	periodEnd = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
)

// fakePricer starts a new period at the order and prices a period as the
// catalog's monthly price times its months.
type fakePricer struct{}

func (fakePricer) NewPeriod(_ Account, cycle string, at time.Time) (time.Time, time.Time) {
	return at, at.AddDate(0, int(cycleMonths(cycle)), 0)
}

func (fakePricer) PeriodPrice(pkg Package, cycle string) int64 {
	return pkg.PriceMinor * cycleMonths(cycle)
}

// planFixture is an active account of extensions 100-109 with 7 lines:
// basic (4 seats: b1 with a phone, b2 and b4 unused, b3 registered), pro
// (2 seats, decreases at the period end only), a retired package, and one
// number billed under the add-on num.
func planFixture() *planInputs {
	monthly := []Cycle{{Cycle: "monthly"}}
	jan, feb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	sub := func(pkg string, qty int, price int64) *subscription {
		return &subscription{ID: "sub-" + pkg, Package: pkg, Cycle: "monthly", Quantity: qty, Status: "active",
			PeriodPrice: price, PeriodStart: periodBeg, PeriodEnd: periodEnd}
	}
	line := func(id, pkg string, ext int, at time.Time, device bool, contacts int) lineRow {
		return lineRow{ID: id, Package: pkg, Extension: ext, CreatedAt: at, Device: device, Contacts: contacts}
	}
	pkgs := []Package{
		{Code: "basic", Kind: "package", PriceMinor: 1000, Currency: "EUR", Cycles: []Cycle{{Cycle: "monthly"}, {Cycle: "annual"}},
			Decrease: DecreaseImmediate, DecreaseChoice: true},
		{Code: "pro", Kind: "package", PriceMinor: 2000, Currency: "EUR", Cycles: monthly, Decrease: DecreasePeriodEnd},
		{Code: "trial", Kind: "package", PriceMinor: 1500, Currency: "EUR", Cycles: monthly, TrialDays: 14, Decrease: DecreaseImmediate},
		{Code: "old", Kind: "package", PriceMinor: 500, Currency: "EUR", Cycles: monthly, Retired: true, Decrease: DecreaseImmediate},
		{Code: "usd", Kind: "package", PriceMinor: 900, Currency: "USD", Cycles: monthly, Decrease: DecreaseImmediate},
		{Code: "num", Kind: "addon", PriceMinor: 100, Currency: "EUR", Cycles: monthly, Decrease: DecreaseImmediate, DecreaseChoice: true},
		{Code: "num2", Kind: "addon", PriceMinor: 150, Currency: "EUR", Cycles: monthly, Decrease: DecreaseImmediate},
		{Code: "sms", Kind: "addon", PriceMinor: 50, Currency: "EUR", Cycles: monthly, Decrease: DecreaseImmediate},
	}
	in := &planInputs{
		accountState: accountState{
			acct: Account{ID: "acct-1", Currency: "EUR", Timezone: "UTC", Status: "active", SeatPreference: "auto_purchase",
				ExtFirst: 100, ExtLast: 109},
			found: true,
			pkgs:  map[string]Package{},
			subs: map[string]*subscription{"basic": sub("basic", 4, 900), "pro": sub("pro", 2, 1800), "old": sub("old", 1, 500),
				"num": sub("num", 1, 100), "sms": sub("sms", 1, 50)},
			lines:        map[string]lineRow{},
			numberAddons: map[string]bool{"num": true, "num2": true},
		},
		chosen: map[string]provdb.ChosenNumberRow{
			"+33142000001": {Kind: NumberLocal, AddonCode: "num", SetupFeeMinor: 500, Free: true},
			"+33142000002": {Kind: NumberLocal, AddonCode: "num"}, // taken
			"+33142000003": {Kind: "national", AddonCode: "num", Free: true},
			"+33142000004": {Kind: NumberLocal, AddonCode: "sms", Free: true},
		},
		free: map[prefixQuery][]provdb.FirstFreeNumbersRow{
			{prefix: "+3314", quantity: 2}:                {{AddonCode: "num", SetupFeeMinor: 300}, {AddonCode: "num", SetupFeeMinor: 300}},
			{prefix: "+3316", quantity: 2}:                {{AddonCode: "num2"}, {AddonCode: "num"}},
			{prefix: "+3316", addon: "num2", quantity: 1}: {{AddonCode: "num2"}},
		},
		owned: map[string]string{"+33142000009": "num"},
	}
	for _, p := range pkgs {
		in.pkgs[p.Code] = p
	}
	for _, l := range []lineRow{
		line("b1", "basic", 101, jan, true, 0), line("b2", "basic", 102, feb, false, 0),
		line("b3", "basic", 103, feb, false, 1), line("b4", "basic", 107, feb, false, 0),
		line("p1", "pro", 104, jan, false, 0), line("p2", "pro", 105, feb, false, 0),
		line("o1", "old", 106, jan, false, 0),
	} {
		in.lines[l.ID] = l
	}
	return in
}

// itemView is a plan item as a case states it.
type itemView struct {
	Pkg, Cycle, SwitchFrom string
	From, To, Create       int
	Remove                 []string
	Scheduled              bool
	AtEnd, NamedAtEnd      []string
}

// planView is a plan as a case states it: changes are
// "package/cycle from>to start..end @price", with " trial" or " once N".
type planView struct {
	Items   []itemView
	Swaps   []string // line>package
	Numbers []NumberLine
	Changes []string
}

func ids(ls []lineRow) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.ID)
	}
	return out
}

func viewOf(p *plan) planView {
	var v planView
	for _, it := range p.items {
		v.Items = append(v.Items, itemView{Pkg: it.pkg.Code, Cycle: it.cycle, SwitchFrom: it.switchFrom, From: it.from, To: it.to,
			Create: it.create, Remove: ids(it.remove), Scheduled: it.scheduled, AtEnd: ids(it.atEnd), NamedAtEnd: it.namedAtEnd})
		if it.scheduled && !it.effectiveAt.Equal(periodEnd) {
			v.Items[len(v.Items)-1].Pkg += " effective " + it.effectiveAt.String()
		}
	}
	for _, sw := range p.swaps {
		v.Swaps = append(v.Swaps, sw.line.ID+">"+sw.to)
	}
	v.Numbers = p.numbers
	for _, pc := range p.changes {
		s := fmt.Sprintf("%s/%s %d>%d %s..%s @%d", pc.Package.Code, pc.Cycle, pc.From, pc.To,
			pc.PeriodStart.Format("01-02"), pc.PeriodEnd.Format("01-02"), pc.PeriodPriceMinor)
		if pc.Trial {
			s += " trial"
		}
		if pc.OneTimeMinor != 0 {
			s += fmt.Sprintf(" once %d", pc.OneTimeMinor)
		}
		v.Changes = append(v.Changes, s)
	}
	return v
}

const noPeriod = "01-01..01-01 @0" // a change priced without a biller

func TestPlanChange(t *testing.T) {
	t.Parallel()
	item := func(pkg string, qty int, remove ...string) ChangeItem {
		return ChangeItem{Package: pkg, Quantity: qty, RemoveLines: remove}
	}
	items := func(its ...ChangeItem) ChangeRequest { return ChangeRequest{Items: its} }
	basic := func(to, create int, remove ...string) itemView {
		return itemView{Pkg: "basic", Cycle: "monthly", From: 4, To: to, Create: create, Remove: remove}
	}
	pro := func(to, create int, remove ...string) itemView {
		return itemView{Pkg: "pro", Cycle: "monthly", From: 2, To: to, Create: create, Remove: remove}
	}
	num := func(to int) itemView { return itemView{Pkg: "num", Cycle: "monthly", From: 1, To: to} }
	cases := []struct {
		name     string
		req      ChangeRequest
		unpriced bool                 // planned without a biller
		setup    func(in *planInputs) // changes the fixture
		want     planView
	}{
		// Quantities.
		{name: "an increase creates its lines at once", req: items(item("basic", 6)),
			want: planView{Items: []itemView{basic(6, 2)}, Changes: []string{"basic/monthly 4>6 03-01..04-01 @900"}}},
		{name: "the same quantity changes nothing", req: items(item("basic", 4)),
			want: planView{Items: []itemView{basic(4, 0)}}},
		{name: "a new package starts a period at the order, in trial", req: items(item("trial", 1)),
			want: planView{Items: []itemView{{Pkg: "trial", Cycle: "monthly", To: 1, Create: 1}},
				Changes: []string{"trial/monthly 0>1 03-10..04-10 @1500 trial"}}},
		{name: "without a biller a new package has no period", req: items(item("trial", 1)), unpriced: true,
			want: planView{Items: []itemView{{Pkg: "trial", Cycle: "monthly", To: 1, Create: 1}},
				Changes: []string{"trial/monthly 0>1 " + noPeriod}}},
		{name: "a subscription at zero is priced as new", req: items(item("basic", 1)),
			setup: func(in *planInputs) {
				in.subs["basic"].Quantity = 0
				for _, id := range []string{"b1", "b2", "b3", "b4"} {
					delete(in.lines, id)
				}
			},
			want: planView{Items: []itemView{{Pkg: "basic", Cycle: "monthly", To: 1, Create: 1}},
				Changes: []string{"basic/monthly 0>1 03-10..04-10 @1000"}}},
		{name: "a trial subscription's change is a trial one", req: items(item("basic", 5)),
			setup: func(in *planInputs) { in.subs["basic"].Status = "trial" },
			want:  planView{Items: []itemView{basic(5, 1)}, Changes: []string{"basic/monthly 4>5 03-01..04-01 @900 trial"}}},
		{name: "a decrease removes the newest unused lines, then the newest used ones", req: items(item("basic", 1)),
			want: planView{Items: []itemView{basic(1, 0, "b4", "b2", "b3")}, Changes: []string{"basic/monthly 4>1 03-01..04-01 @900"}}},
		{name: "between unused lines as new, the highest extension goes first", req: items(item("basic", 3)),
			want: planView{Items: []itemView{basic(3, 0, "b4")}, Changes: []string{"basic/monthly 4>3 03-01..04-01 @900"}}},
		{name: "between used lines, the newest goes first", req: items(item("basic", 1)),
			setup: func(in *planInputs) { delete(in.lines, "b2"); delete(in.lines, "b4"); in.subs["basic"].Quantity = 2 },
			want: planView{Items: []itemView{{Pkg: "basic", Cycle: "monthly", From: 2, To: 1, Remove: []string{"b3"}}},
				Changes: []string{"basic/monthly 2>1 03-01..04-01 @900"}}},
		{name: "the lines named go first", req: items(item("basic", 2, "b1")),
			want: planView{Items: []itemView{basic(2, 0, "b1", "b4")}, Changes: []string{"basic/monthly 4>2 03-01..04-01 @900"}}},
		{name: "a retired package may go down", req: items(item("old", 0)),
			want: planView{Items: []itemView{{Pkg: "old", Cycle: "monthly", From: 1, To: 0, Remove: []string{"o1"}}},
				Changes: []string{"old/monthly 1>0 03-01..04-01 @500"}}},
		{name: "the extension range holds exactly", req: items(item("basic", 7)),
			want: planView{Items: []itemView{basic(7, 3)}, Changes: []string{"basic/monthly 4>7 03-01..04-01 @900"}}},
		{name: "a cycle switch credits the old period and charges a new one", req: items(ChangeItem{Package: "basic", Quantity: 5, Cycle: "annual"}),
			want: planView{Items: []itemView{{Pkg: "basic", Cycle: "annual", SwitchFrom: "monthly", From: 4, To: 5, Create: 1}},
				Changes: []string{"basic/monthly 4>0 03-01..04-01 @900", "basic/annual 0>5 03-10..03-10 @12000"}}},
		{name: "the cycle in force is no switch", req: items(ChangeItem{Package: "basic", Quantity: 5, Cycle: "monthly"}),
			want: planView{Items: []itemView{basic(5, 1)}, Changes: []string{"basic/monthly 4>5 03-01..04-01 @900"}}},

		// Period-end decreases.
		{name: "a package decreasing at the period end keeps its lines until then", req: items(item("pro", 1)),
			want: planView{Items: []itemView{{Pkg: "pro", Cycle: "monthly", From: 2, To: 1, Scheduled: true, AtEnd: []string{"p2"}}}}},
		{name: "a period-end decrease keeps the lines named", req: items(item("pro", 1, "p1")),
			want: planView{Items: []itemView{{Pkg: "pro", Cycle: "monthly", From: 2, To: 1, Scheduled: true,
				AtEnd: []string{"p1"}, NamedAtEnd: []string{"p1"}}}}},
		{name: "a customer may choose the period end where the package lets them",
			req:  items(ChangeItem{Package: "basic", Quantity: 2, Effective: EffectivePeriodEnd}),
			want: planView{Items: []itemView{{Pkg: "basic", Cycle: "monthly", From: 4, To: 2, Scheduled: true, AtEnd: []string{"b4", "b2"}}}}},
		{name: "the operator may choose now where customers may not",
			req:  ChangeRequest{Items: []ChangeItem{{Package: "pro", Quantity: 1, Effective: EffectiveNow}}, ByOperator: true},
			want: planView{Items: []itemView{pro(1, 0, "p2")}, Changes: []string{"pro/monthly 2>1 03-01..04-01 @1800"}}},
		{name: "an increase of a package with a decrease pending is allowed", req: items(item("pro", 3)),
			setup: func(in *planInputs) {
				in.scheduled = []ScheduledChange{{ID: "sc-1", Package: "pro", From: 2, To: 1, EffectiveAt: periodEnd}}
			},
			want: planView{Items: []itemView{pro(3, 1)}, Changes: []string{"pro/monthly 2>3 03-01..04-01 @1800"}}},

		// Swaps.
		{name: "a swap to a full package buys a seat there", req: ChangeRequest{Swaps: []Swap{{Line: "b2", Package: "pro"}}},
			want: planView{Items: []itemView{basic(3, 0), pro(3, 0)}, Swaps: []string{"b2>pro"},
				Changes: []string{"basic/monthly 4>3 03-01..04-01 @900", "pro/monthly 2>3 03-01..04-01 @1800"}}},
		{name: "a swap to a package with a free seat uses it", req: ChangeRequest{Swaps: []Swap{{Line: "b2", Package: "pro"}}},
			setup: func(in *planInputs) { in.subs["pro"].Quantity = 3 },
			want: planView{Items: []itemView{basic(3, 0), {Pkg: "pro", Cycle: "monthly", From: 3, To: 3}}, Swaps: []string{"b2>pro"},
				Changes: []string{"basic/monthly 4>3 03-01..04-01 @900"}}},
		{name: "a swap from a package the order lists keeps its seat", req: ChangeRequest{Items: []ChangeItem{item("basic", 4)},
			Swaps: []Swap{{Line: "b2", Package: "pro"}}},
			want: planView{Items: []itemView{basic(4, 1), pro(3, 0)}, Swaps: []string{"b2>pro"},
				Changes: []string{"basic/monthly 4>4 03-01..04-01 @900", "pro/monthly 2>3 03-01..04-01 @1800"}}},
		{name: "a decrease never removes a line being swapped", req: ChangeRequest{Items: []ChangeItem{item("basic", 2)},
			Swaps: []Swap{{Line: "b4", Package: "pro"}}},
			want: planView{Items: []itemView{basic(2, 0, "b2"), pro(3, 0)}, Swaps: []string{"b4>pro"},
				Changes: []string{"basic/monthly 4>2 03-01..04-01 @900", "pro/monthly 2>3 03-01..04-01 @1800"}}},
		{name: "two swaps to a full package buy two seats", req: ChangeRequest{Swaps: []Swap{{Line: "b2", Package: "pro"}, {Line: "b4", Package: "pro"}}},
			want: planView{Items: []itemView{basic(2, 0), pro(4, 0)}, Swaps: []string{"b2>pro", "b4>pro"},
				Changes: []string{"basic/monthly 4>2 03-01..04-01 @900", "pro/monthly 2>4 03-01..04-01 @1800"}}},

		// Numbers.
		{name: "a chosen number moves its add-on up and charges its setup fee",
			req: ChangeRequest{Numbers: []NumberOrder{{Number: "+33 1 42 00 00 01"}}},
			want: planView{Items: []itemView{num(2)},
				Numbers: []NumberLine{{Action: "order", Number: "+33142000001", Quantity: 1, Addon: "num", SetupFeeMinor: 500}},
				Changes: []string{"num/monthly 1>2 03-01..04-01 @100", "num/monthly 0>1 01-01..01-01 @0 once 500"}}},
		{name: "the operator may order a number that is not local",
			req: ChangeRequest{Numbers: []NumberOrder{{Number: "+33142000003"}}, ByOperator: true},
			want: planView{Items: []itemView{num(2)}, Numbers: []NumberLine{{Action: "order", Number: "+33142000003", Quantity: 1, Addon: "num"}},
				Changes: []string{"num/monthly 1>2 03-01..04-01 @100"}}},
		{name: "numbers by prefix take the first free ones",
			req: ChangeRequest{Numbers: []NumberOrder{{Prefix: "+3314", Quantity: 2}}},
			want: planView{Items: []itemView{num(3)},
				Numbers: []NumberLine{{Action: "order", Prefix: "+3314", Quantity: 2, Addon: "num", SetupFeeMinor: 600}},
				Changes: []string{"num/monthly 1>3 03-01..04-01 @100", "num/monthly 0>2 01-01..01-01 @0 once 600"}}},
		{name: "an add-on picks between the free numbers of a prefix",
			req: ChangeRequest{Numbers: []NumberOrder{{Prefix: "+3316", Quantity: 1, Addon: "num2"}}},
			want: planView{Items: []itemView{{Pkg: "num2", Cycle: "monthly", To: 1}},
				Numbers: []NumberLine{{Action: "order", Prefix: "+3316", Quantity: 1, Addon: "num2"}},
				Changes: []string{"num2/monthly 0>1 03-10..04-10 @150"}}},
		{name: "a number released goes now by default", req: ChangeRequest{ReleaseNumbers: []string{"+33142000009"}},
			want: planView{Items: []itemView{num(0)}, Numbers: []NumberLine{{Action: "release", Number: "+33142000009", Quantity: 1, Addon: "num"}},
				Changes: []string{"num/monthly 1>0 03-01..04-01 @100"}}},
		{name: "a number released may wait for the period end",
			req: ChangeRequest{ReleaseNumbers: []string{"+33142000009"}, ReleaseEffective: EffectivePeriodEnd},
			want: planView{Items: []itemView{{Pkg: "num", Cycle: "monthly", From: 1, To: 0, Scheduled: true}},
				Numbers: []NumberLine{{Action: "release", Number: "+33142000009", Quantity: 1, Addon: "num", Effective: EffectivePeriodEnd}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			in := planFixture()
			if c.setup != nil {
				c.setup(in)
			}
			var pr periodPricer = fakePricer{}
			if c.unpriced {
				pr = nil
			}
			p, err := planChange(in, c.req, pr, planNow)
			if err != nil {
				t.Fatalf("planChange: %v", err)
			}
			if got := viewOf(p); !reflect.DeepEqual(got, c.want) {
				t.Errorf("plan\n got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestPlanChangeRefuses(t *testing.T) {
	t.Parallel()
	items := func(its ...ChangeItem) ChangeRequest { return ChangeRequest{Items: its} }
	numbers := func(os ...NumberOrder) ChangeRequest { return ChangeRequest{Numbers: os} }
	pending := func(in *planInputs) {
		in.scheduled = []ScheduledChange{{ID: "sc-1", Package: "pro", From: 2, To: 1, EffectiveAt: periodEnd}}
	}
	const proPending = "package pro has a decrease by 1 scheduled for 2026-04-01T00:00:00Z; cancel it first (DELETE /v1/accounts/acct-1/scheduled-changes/sc-1)"
	cases := []struct {
		name     string
		req      ChangeRequest
		unpriced bool
		setup    func(in *planInputs)
		kind     fault.Kind
		field    string
		msg      string
	}{
		// The account and the order as a whole.
		{name: "no account", req: items(ChangeItem{Package: "basic", Quantity: 5}), setup: func(in *planInputs) { in.found = false },
			kind: fault.NotFound, msg: "account not found"},
		{name: "an account not active", req: items(ChangeItem{Package: "basic", Quantity: 5}),
			setup: func(in *planInputs) { in.acct.Status = "suspended" }, kind: fault.Conflict, msg: "account is suspended"},
		{name: "an empty order", kind: fault.Invalid, field: "items", msg: "items (or swaps) must list at least one package"},
		{name: "a renewal being invoiced", req: items(ChangeItem{Package: "pro", Quantity: 5}),
			setup: func(in *planInputs) { in.subs["basic"].PeriodEnd = planNow },
			kind:  fault.Conflict, msg: "the renewal of package basic is being invoiced; try again in a moment"},
		{name: "too many lines for the extension range", req: items(ChangeItem{Package: "basic", Quantity: 8}),
			kind: fault.Invalid, field: "items", msg: "11 lines would not fit the extension range 100–109 (10 numbers)"},

		// Items.
		{name: "a package listed twice", req: items(ChangeItem{Package: "basic", Quantity: 5}, ChangeItem{Package: "basic", Quantity: 6}),
			kind: fault.Invalid, field: "items[1].package", msg: `package "basic" is listed twice`},
		{name: "an unknown effective", req: items(ChangeItem{Package: "basic", Quantity: 3, Effective: "later"}),
			kind: fault.Invalid, field: "items[0].effective", msg: "effective must be now or period_end"},
		{name: "an unknown cycle", req: items(ChangeItem{Package: "basic", Quantity: 3, Cycle: "weekly"}),
			kind: fault.Invalid, field: "items[0].cycle", msg: "cycle must be monthly, quarterly, semiannual or annual"},
		{name: "a missing package", req: items(ChangeItem{Package: "nope", Quantity: 1}),
			kind: fault.Invalid, field: "items[0].package", msg: `unknown package "nope"`},
		{name: "a package in another currency", req: items(ChangeItem{Package: "usd", Quantity: 1}),
			kind: fault.Invalid, field: "items[0].package", msg: "package usd is sold in USD, the account pays in EUR"},
		{name: "a cycle the package does not offer", req: items(ChangeItem{Package: "pro", Quantity: 2, Cycle: "annual"}),
			kind: fault.Invalid, field: "items[0].cycle", msg: "package pro is not offered annual"},
		{name: "a negative quantity", req: items(ChangeItem{Package: "basic", Quantity: -1}),
			kind: fault.Invalid, field: "items[0].quantity", msg: "quantity must be between 0 and 10000"},
		{name: "an absurd quantity", req: items(ChangeItem{Package: "basic", Quantity: MaxQuantity + 1}),
			kind: fault.Invalid, field: "items[0].quantity", msg: "quantity must be between 0 and 10000"},
		{name: "more of a retired package", req: items(ChangeItem{Package: "old", Quantity: 2}),
			kind: fault.Invalid, field: "items[0].package", msg: "package old is retired: no new lines"},
		{name: "an unknown line to remove", req: items(ChangeItem{Package: "basic", Quantity: 3, RemoveLines: []string{"b1", "zz"}}),
			kind: fault.Invalid, field: "items[0].remove_lines[1]", msg: "line zz is not a line of package basic"},
		{name: "a line of another package to remove", req: items(ChangeItem{Package: "basic", Quantity: 3, RemoveLines: []string{"p1"}}),
			kind: fault.Invalid, field: "items[0].remove_lines[0]", msg: "line p1 is not a line of package basic"},
		{name: "more lines named than go", req: items(ChangeItem{Package: "basic", Quantity: 3, RemoveLines: []string{"b1", "b2"}}),
			kind: fault.Invalid, field: "items[0].remove_lines", msg: "2 lines named for removal, only 1 go"},
		{name: "lines named where none goes", req: items(ChangeItem{Package: "basic", Quantity: 4, RemoveLines: []string{"b1"}}),
			kind: fault.Invalid, field: "items[0].remove_lines", msg: "no line goes at quantity 4"},
		{name: "lines named for an add-on", req: items(ChangeItem{Package: "sms", Quantity: 0, RemoveLines: []string{"s1"}}),
			setup: func(in *planInputs) { in.lines["s1"] = lineRow{ID: "s1", Package: "sms", Extension: 108} },
			kind:  fault.Invalid, field: "items[0].remove_lines", msg: "sms is an add-on: it has no lines"},

		// Period-end decreases.
		{name: "an increase at the period end", req: items(ChangeItem{Package: "basic", Quantity: 5, Effective: EffectivePeriodEnd}),
			kind: fault.Invalid, field: "items[0].effective", msg: "only a decrease can wait for the period end; basic goes up now"},
		{name: "a customer choosing what the package does not let them", req: items(ChangeItem{Package: "pro", Quantity: 1, Effective: EffectiveNow}),
			kind: fault.Invalid, field: "items[0].effective", msg: "package pro decreases period_end only"},
		{name: "more lines named than go at the period end", req: items(ChangeItem{Package: "pro", Quantity: 1, RemoveLines: []string{"p1", "p2"}}),
			kind: fault.Invalid, field: "items[0].remove_lines", msg: "2 lines named for removal, only 1 go"},
		{name: "a period-end decrease of a package a line is swapped from",
			req:  ChangeRequest{Items: []ChangeItem{{Package: "basic", Quantity: 2, Effective: EffectivePeriodEnd}}, Swaps: []Swap{{Line: "b1", Package: "pro"}}},
			kind: fault.Invalid, field: "items[0].effective", msg: "a package a line is swapped from or to, or whose cycle switches, changes now"},
		{name: "a period-end decrease with a cycle switch",
			req:  items(ChangeItem{Package: "basic", Quantity: 2, Cycle: "annual", Effective: EffectivePeriodEnd}),
			kind: fault.Invalid, field: "items[0].effective", msg: "a package a line is swapped from or to, or whose cycle switches, changes now"},
		{name: "a decrease while one is pending", req: items(ChangeItem{Package: "pro", Quantity: 1}), setup: pending,
			kind: fault.Conflict, field: "items[0]", msg: proPending},
		{name: "a swap while a decrease is pending", req: ChangeRequest{Swaps: []Swap{{Line: "b1", Package: "pro"}}}, setup: pending,
			kind: fault.Conflict, field: "numbers", msg: proPending},
		{name: "a release at the period end of an add-on that decreases now only",
			req:   ChangeRequest{ReleaseNumbers: []string{"+33142000009"}, ReleaseEffective: EffectivePeriodEnd},
			setup: func(in *planInputs) { p := in.pkgs["num"]; p.DecreaseChoice = false; in.pkgs["num"] = p },
			kind:  fault.Invalid, field: "release_effective", msg: "package num decreases now only"},

		// Swaps.
		{name: "a swap of an unknown line", req: ChangeRequest{Swaps: []Swap{{Line: "zz", Package: "pro"}}},
			kind: fault.Invalid, field: "swaps[0].line", msg: `unknown line "zz"`},
		{name: "a swap to the line's own package", req: ChangeRequest{Swaps: []Swap{{Line: "b1", Package: "basic"}}},
			kind: fault.Invalid, field: "swaps[0].package", msg: "line b1 is already on package basic or swapped twice"},
		{name: "a line swapped twice", req: ChangeRequest{Swaps: []Swap{{Line: "b1", Package: "pro"}, {Line: "b1", Package: "trial"}}},
			kind: fault.Invalid, field: "swaps[1].package", msg: "line b1 is already on package trial or swapped twice"},
		{name: "a swap to a missing package", req: ChangeRequest{Swaps: []Swap{{Line: "b1", Package: "nope"}}},
			kind: fault.Invalid, field: "swaps[0].package", msg: `unknown package "nope"`},
		{name: "a swap to a retired package", req: ChangeRequest{Swaps: []Swap{{Line: "b1", Package: "old"}}},
			kind: fault.Invalid, field: "swaps[0].package", msg: "package old is retired"},
		{name: "a swap to a full package where the account blocks purchases", req: ChangeRequest{Swaps: []Swap{{Line: "b1", Package: "pro"}}},
			setup: func(in *planInputs) { in.acct.SeatPreference = "block" },
			kind:  fault.Conflict, field: "swaps[0].package", msg: "no free seat on package pro and the account blocks automatic purchase"},

		// Numbers.
		{name: "a quantity for an add-on that bills numbers", req: items(ChangeItem{Package: "num", Quantity: 3}),
			kind: fault.Invalid, field: "items[0].package", msg: `num bills phone numbers: order numbers with "numbers" (a prefix or a chosen number) instead of a quantity`},
		{name: "a number and a prefix", req: numbers(NumberOrder{Number: "+33142000001", Prefix: "+3314"}),
			kind: fault.Invalid, field: "numbers[0].prefix", msg: "give a number or a prefix, not both"},
		{name: "neither a number nor a prefix", req: numbers(NumberOrder{Quantity: 1}),
			kind: fault.Invalid, field: "numbers[0].prefix", msg: "give a prefix (with a quantity) or a chosen number"},
		{name: "a chosen number not E.164", req: numbers(NumberOrder{Number: "0142000001"}),
			kind: fault.Invalid, field: "numbers[0].number", msg: `"0142000001" is not an E.164 number: must start with + and the country code`},
		{name: "a chosen number in quantity", req: numbers(NumberOrder{Number: "+33142000001", Quantity: 2}),
			kind: fault.Invalid, field: "numbers[0].quantity", msg: "a chosen number has quantity 1"},
		{name: "a chosen number twice", req: numbers(NumberOrder{Number: "+33142000001"}, NumberOrder{Number: "+33 1 42 00 00 01"}),
			kind: fault.Invalid, field: "numbers[1].number", msg: "number +33142000001 is listed twice"},
		{name: "a chosen number taken", req: numbers(NumberOrder{Number: "+33142000002"}),
			kind: fault.Conflict, field: "numbers[0].number", msg: "number +33142000002 is not available; pick another free local number"},
		{name: "a chosen number not in the inventory", req: numbers(NumberOrder{Number: "+33142000005"}),
			kind: fault.Conflict, field: "numbers[0].number", msg: "number +33142000005 is not available; pick another free local number"},
		{name: "a customer choosing a number that is not local", req: numbers(NumberOrder{Number: "+33142000003"}),
			kind: fault.Conflict, field: "numbers[0].number", msg: "number +33142000003 is not available; pick another free local number"},
		{name: "a number of an add-on also listed",
			req:  ChangeRequest{Items: []ChangeItem{{Package: "sms", Quantity: 1}}, Numbers: []NumberOrder{{Number: "+33142000004"}}},
			kind: fault.Invalid, field: "numbers[0]", msg: "add-on sms is also listed in items"},
		{name: "a bad prefix", req: numbers(NumberOrder{Prefix: "33", Quantity: 1}),
			kind: fault.Invalid, field: "numbers[0].prefix", msg: "prefix must be + and 1 to 15 digits, e.g. +331"},
		{name: "no quantity by prefix", req: numbers(NumberOrder{Prefix: "+3314"}),
			kind: fault.Invalid, field: "numbers[0].quantity", msg: "quantity must be between 1 and 1000"},
		{name: "too many by prefix", req: numbers(NumberOrder{Prefix: "+3314", Quantity: maxNumbersPerOrder + 1}),
			kind: fault.Invalid, field: "numbers[0].quantity", msg: "quantity must be between 1 and 1000"},
		{name: "too few free numbers", req: numbers(NumberOrder{Prefix: "+3314", Quantity: 3}),
			kind: fault.Conflict, field: "numbers[0].quantity", msg: "only 0 free local numbers start with +3314"},
		{name: "free numbers under two add-ons", req: numbers(NumberOrder{Prefix: "+3316", Quantity: 2}),
			kind: fault.Invalid, field: "numbers[0].addon", msg: "the free numbers starting +3316 are sold as [num num2]: say which add-on"},
		{name: "a release not E.164", req: ChangeRequest{ReleaseNumbers: []string{"x"}},
			kind: fault.Invalid, field: "release_numbers[0]", msg: `"x" is not an E.164 number: must start with + and the country code`},
		{name: "a release of a number not the account's", req: ChangeRequest{ReleaseNumbers: []string{"+33142000008"}},
			kind: fault.Invalid, field: "release_numbers[0]", msg: "number +33142000008 is not the account's"},
		{name: "a release of a number ordered", req: ChangeRequest{Numbers: []NumberOrder{{Number: "+33142000009"}}, ReleaseNumbers: []string{"+33142000009"}},
			setup: func(in *planInputs) {
				in.chosen["+33142000009"] = provdb.ChosenNumberRow{Kind: NumberLocal, AddonCode: "num", Free: true}
			},
			kind: fault.Invalid, field: "release_numbers[0]", msg: "number +33142000009 is listed twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			in := planFixture()
			if c.setup != nil {
				c.setup(in)
			}
			var pr periodPricer = fakePricer{}
			if c.unpriced {
				pr = nil
			}
			p, err := planChange(in, c.req, pr, planNow)
			fe, ok := fault.As(err)
			if !ok {
				t.Fatalf("planChange = %+v, %v; want a fault", p, err)
			}
			if fe.Kind != c.kind || fe.Field != c.field || fe.Msg != c.msg {
				t.Errorf("planChange: kind %d, %q: %q\nwant kind %d, %q: %q", fe.Kind, fe.Field, fe.Msg, c.kind, c.field, c.msg)
			}
		})
	}
}

// A renewal check needs billing: without a biller a period in the past
// is planned as is.
func TestPlanChangeUnpricedIgnoresPeriods(t *testing.T) {
	t.Parallel()
	in := planFixture()
	in.subs["basic"].PeriodEnd = planNow
	if _, err := planChange(in, ChangeRequest{Items: []ChangeItem{{Package: "basic", Quantity: 5}}}, nil, planNow); err != nil {
		t.Fatal(err)
	}
}

// The same inputs give the same plan: map order does not leak into it.
func TestPlanChangeIsDeterministic(t *testing.T) {
	t.Parallel()
	req := ChangeRequest{Items: []ChangeItem{{Package: "basic", Quantity: 1}, {Package: "pro", Quantity: 1}},
		Numbers: []NumberOrder{{Prefix: "+3314", Quantity: 2}}, ReleaseNumbers: []string{"+33142000009"}}
	first, err := planChange(planFixture(), req, fakePricer{}, planNow)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		p, err := planChange(planFixture(), req, fakePricer{}, planNow)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(viewOf(p), viewOf(first)) {
			t.Fatalf("plans differ:\n%+v\n%+v", viewOf(p), viewOf(first))
		}
	}
}
