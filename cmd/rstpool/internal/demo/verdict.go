package demo

import (
	"fmt"
	"strings"
)

// A legCount is one leg's numbers for the verdict.
type legCount struct {
	name                string
	stockIdem, rpIdem   int // idempotent errors surfaced
	stockTwice, rpTwice int // non-idempotent work applied twice
}

// Verdict sums the report up in one line: which client surfaced fewer of
// the errors a retry could have saved (idempotent ones), leg by leg, and
// whether any POST or database write ran twice.
func Verdict(r *Report) string {
	legs := []legCount{count("http", r.Clients)}
	for _, db := range r.Databases {
		if db.Skipped == "" && len(db.Clients) == 2 {
			legs = append(legs, count(db.Name, db.Clients))
		}
	}
	one, many := "POST", "POSTs"
	if len(legs) > 1 {
		one, many = "POST or write", "POSTs or writes"
	}
	return "verdict: " + compareLegs(legs) + "; " + twice(legs, one, many) + "."
}

func count(name string, cs []ClientResult) legCount {
	if len(cs) != 2 {
		return legCount{name: name}
	}
	return legCount{name, cs[0].IdempotentErrors, cs[1].IdempotentErrors, cs[0].Duplicates, cs[1].Duplicates}
}

// compareLegs says which client surfaced fewer idempotent errors.
func compareLegs(legs []legCount) string {
	if len(legs) == 1 {
		l := legs[0]
		than := "than"
		if fewer(l) == "as many" {
			than = "as"
		}
		return fmt.Sprintf("rstpool surfaced %s idempotent errors %s stock (%d vs %d)", fewer(l), than, l.rpIdem, l.stockIdem)
	}
	var parts []string
	tally := map[string]int{}
	for _, l := range legs {
		parts = append(parts, fmt.Sprintf("%s %d vs %d", l.name, l.rpIdem, l.stockIdem))
		tally[fewer(l)]++
	}
	return fmt.Sprintf("idempotent errors surfaced, rstpool vs stock: %s (rstpool fewer in %d, as many in %d, more in %d)",
		strings.Join(parts, ", "), tally["fewer"], tally["as many"], tally["more"])
}

func fewer(l legCount) string {
	switch {
	case l.rpIdem < l.stockIdem:
		return "fewer"
	case l.rpIdem == l.stockIdem:
		return "as many"
	}
	return "more"
}

// twice says whether any non-idempotent work ran twice, and where.
func twice(legs []legCount, one, many string) string {
	var where []string
	for _, l := range legs {
		if l.stockTwice > 0 {
			where = append(where, fmt.Sprintf("stock %s %d", l.name, l.stockTwice))
		}
		if l.rpTwice > 0 {
			where = append(where, fmt.Sprintf("rstpool %s %d", l.name, l.rpTwice))
		}
	}
	if len(where) == 0 {
		return "no " + one + " ran twice"
	}
	return many + " that ran twice: " + strings.Join(where, ", ")
}
