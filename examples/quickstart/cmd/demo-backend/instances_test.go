package main

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseInstances(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []instance
	}{
		{
			name: "one",
			in:   "greeter-v1-a=v1@127.0.0.1:9101",
			want: []instance{{ID: "greeter-v1-a", Version: "v1", Addr: "127.0.0.1:9101"}},
		},
		{
			name: "spaces around entries",
			in:   " greeter-v1-a=v1@127.0.0.1:9101 , greeter-v2-a=v2@127.0.0.1:9201 ",
			want: []instance{
				{ID: "greeter-v1-a", Version: "v1", Addr: "127.0.0.1:9101"},
				{ID: "greeter-v2-a", Version: "v2", Addr: "127.0.0.1:9201"},
			},
		},
		{
			name: "ipv6",
			in:   "a=v1@[::1]:9101",
			want: []instance{{ID: "a", Version: "v1", Addr: "[::1]:9101"}},
		},
		{
			name: "default",
			in:   defaultInstances,
			want: []instance{
				{ID: "greeter-v1-a", Version: "v1", Addr: "127.0.0.1:9101"},
				{ID: "greeter-v1-b", Version: "v1", Addr: "127.0.0.1:9102"},
				{ID: "greeter-v2-a", Version: "v2", Addr: "127.0.0.1:9201"},
				{ID: "greeter-v2-b", Version: "v2", Addr: "127.0.0.1:9202"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseInstances(tc.in)
			if err != nil {
				t.Fatalf("parseInstances(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parseInstances(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestParseInstancesRejects(t *testing.T) {
	for _, in := range []string{
		"",
		"greeter-v1-a=v1@127.0.0.1:9101,",
		"greeter-v1-a",
		"greeter-v1-a=v1",
		"greeter-v1-a@127.0.0.1:9101",
		"=v1@127.0.0.1:9101",
		"greeter-v1-a=@127.0.0.1:9101",
		"greeter-v1-a=v1@127.0.0.1",
		"greeter-v1-a=v1@:9101",
		"greeter-v1-a=v1@127.0.0.1:http",
		"greeter-v1-a=v1@127.0.0.1:0",
		"greeter-v1-a=v1@127.0.0.1:65536",
		"greeter-v1-a=v1@127.0.0.1:9101,greeter-v1-a=v2@127.0.0.1:9201",
		"greeter-v1-a=v1@127.0.0.1:9101,greeter-v1-b=v1@127.0.0.1:9101",
	} {
		got, err := parseInstances(in)
		if !errors.Is(err, errInstances) {
			t.Errorf("parseInstances(%q) = %v, %v; want an error wrapping errInstances", in, got, err)
		}
	}
}

func FuzzParseInstances(f *testing.F) {
	f.Add(defaultInstances)
	f.Add("a=v1@[::1]:1")
	f.Add("a=b=c@d@e:1,")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseInstances(s)
		if err != nil {
			return
		}
		ids := map[string]bool{}
		for _, in := range got {
			if in.ID == "" || in.Version == "" || in.Addr == "" || ids[in.ID] {
				t.Fatalf("parseInstances(%q) = %+v: empty field or duplicate id", s, got)
			}
			ids[in.ID] = true
		}
	})
}
