package policy

import "testing"

// checkAccepted reports what ParseFile must never accept: a fixed split that
// is not exactly all of the traffic, a step or weight beyond 100 %, a rollout
// between one version and itself, a pause that never ends nor waits, an
// unreachable preview, a condition or stickiness that is not exactly one
// thing, or a missing default.
func checkAccepted(t *testing.T, p Policy) {
	t.Helper()
	specs := 0
	for _, set := range []bool{p.Canary != nil, p.BlueGreen != nil, p.Rolling != nil} {
		if set {
			specs++
		}
	}
	switch {
	case p.Strategy == Fixed && (specs != 0 || p.ProgressDeadline != 0 || p.OnNack != ""):
		t.Errorf("fixed policy with rollout settings: %+v", p)
	case p.Strategy != Fixed && (specs != 1 || p.Weights != nil || p.ProgressDeadline <= 0 || (p.OnNack != NackPause && p.OnNack != NackAbort)):
		t.Errorf("%s policy with spec count %d, weights %v, deadline %v, onNack %q", p.Strategy, specs, p.Weights, p.ProgressDeadline, p.OnNack)
	}
	switch p.Strategy {
	case Fixed:
		if sum := p.Weights.Sum(); sum != Full {
			t.Errorf("accepted weights %v sum to %v", p.Weights, sum)
		}
		for v, w := range p.Weights {
			if w > Full {
				t.Errorf("accepted weight %v for %s", w, v)
			}
		}
	case Canary:
		checkCanary(t, p.Canary)
	case BlueGreen:
		b := p.BlueGreen
		if b.Active == b.Preview || len(b.PreviewMatch) == 0 || b.AutoPromoteAfter < 0 || b.RollbackWindow < 0 {
			t.Errorf("accepted blue-green %+v", b)
		}
		checkMatches(t, b.PreviewMatch)
	case Rolling:
		r := p.Rolling
		if r.From == r.To || r.StepWeight == 0 || r.StepWeight > Full || r.Interval <= 0 {
			t.Errorf("accepted rolling %+v", r)
		}
	default:
		t.Errorf("accepted strategy %q", p.Strategy)
	}
}

func checkCanary(t *testing.T, c *CanarySpec) {
	t.Helper()
	if c.Stable == c.Version || len(c.Steps) == 0 {
		t.Errorf("accepted canary %+v", c)
	}
	for i, s := range c.Steps {
		switch {
		case (s.SetWeight == nil) == (s.Pause == nil):
			t.Errorf("step %d: want exactly one of setWeight and pause: %+v", i, s)
		case s.SetWeight != nil && *s.SetWeight > Full:
			t.Errorf("step %d: accepted weight %v", i, *s.SetWeight)
		case s.Pause != nil && s.Pause.Indefinite == (s.Pause.Duration > 0):
			t.Errorf("step %d: accepted pause %+v", i, *s.Pause)
		}
	}
	checkMatches(t, c.Match)
	if st := c.Sticky; st != nil && (st.Header == "") == (st.Cookie == "") {
		t.Errorf("accepted sticky %+v", *st)
	}
}

func checkMatches(t *testing.T, ms []Match) {
	t.Helper()
	for _, m := range ms {
		ops := 0
		for _, set := range []bool{m.Exact != "", m.Prefix != "", m.Regex != ""} {
			if set {
				ops++
			}
		}
		// An empty exact value is valid, so ops may be 0 for one.
		if (m.Header == "") == (m.Cookie == "") || ops > 1 {
			t.Errorf("accepted match %+v", m)
		}
	}
}
