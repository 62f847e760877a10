package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var ctlJSON = protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: false}

// ctlWriteJSON prints one message as protobuf JSON.
func ctlWriteJSON(w io.Writer, m proto.Message) error {
	b, err := ctlJSON.Marshal(m)
	if err != nil {
		return err
	}
	return ctlWriteIndented(w, b)
}

// ctlWriteJSONList prints messages as one JSON array.
func ctlWriteJSONList[M proto.Message](w io.Writer, ms []M) error {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, m := range ms {
		if i > 0 {
			buf.WriteByte(',')
		}
		b, err := ctlJSON.Marshal(m)
		if err != nil {
			return err
		}
		buf.Write(b)
	}
	buf.WriteByte(']')
	return ctlWriteIndented(w, buf.Bytes())
}

// ctlWriteIndented re-indents JSON with encoding/json: protojson varies its
// whitespace from build to build on purpose, and scripts and goldens need
// the same bytes every time.
func ctlWriteIndented(w io.Writer, b []byte) error {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err := w.Write(out.Bytes())
	return err
}

func ctlTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

// ctlPercent formats a weight in hundredths of a percent with up to two
// decimals: 8000 → "80", 1250 → "12.5", 3333 → "33.33".
func ctlPercent(hundredths uint32) string {
	whole, frac := hundredths/100, hundredths%100
	switch {
	case frac == 0:
		return fmt.Sprint(whole)
	case frac%10 == 0:
		return fmt.Sprintf("%d.%d", whole, frac/10)
	default:
		return fmt.Sprintf("%d.%02d", whole, frac)
	}
}

func ctlSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ctlWeights formats weights as "v1=80% v2=20%", sorted by version.
func ctlWeights(w map[string]uint32) string {
	if len(w) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(w))
	for _, v := range ctlSortedKeys(w) {
		parts = append(parts, v+"="+ctlPercent(w[v])+"%")
	}
	return strings.Join(parts, " ")
}

// ctlBarWidth is the number of cells in a weight bar.
const ctlBarWidth = 20

// ctlBarFills draw the versions of a bar, in version order.
var ctlBarFills = []string{"█", "░", "▓", "▒"}

// ctlBar draws weights as "[v1 ████████████████░░░░ v2] 80/20", versions
// in order, each with its own fill; with three or more versions the names
// follow the percentages.
func ctlBar(w map[string]uint32) string {
	versions := ctlSortedKeys(w)
	if len(versions) == 0 {
		return "[" + strings.Repeat(" ", ctlBarWidth) + "] -"
	}
	var bar strings.Builder
	var cum uint32
	drawn := 0
	pcts := make([]string, len(versions))
	for i, v := range versions {
		cum += w[v]
		upto := int(math.Round(float64(cum) * ctlBarWidth / 10000))
		upto = min(max(upto, drawn), ctlBarWidth)
		bar.WriteString(strings.Repeat(ctlBarFills[i%len(ctlBarFills)], upto-drawn))
		drawn = upto
		pcts[i] = ctlPercent(w[v])
	}
	bar.WriteString(strings.Repeat(" ", ctlBarWidth-drawn))
	last := versions[len(versions)-1]
	switch len(versions) {
	case 1:
		return fmt.Sprintf("[%s %s] %s", last, bar.String(), pcts[0])
	case 2:
		return fmt.Sprintf("[%s %s %s] %s", versions[0], bar.String(), last, strings.Join(pcts, "/"))
	default:
		return fmt.Sprintf("[%s %s %s] %s (%s)", versions[0], bar.String(), last,
			strings.Join(pcts, "/"), strings.Join(versions, "/"))
	}
}

// ctlFraction formats a fraction of the fleet as a whole percent.
func ctlFraction(f float64) string {
	return fmt.Sprintf("%d%%", int(math.Round(f*100)))
}

// ctlTime formats a timestamp in UTC so output does not depend on where
// the CLI runs.
func ctlTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

func ctlDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
