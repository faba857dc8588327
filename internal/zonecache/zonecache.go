// Package zonecache loads IANA time zones once per process.
//
// time.LoadLocation reads and parses a zone's tzdata file on every call.
// slotd names a zone for every tenant and every resource, so it sets Load
// as engine.ZoneSource: tenants then share one *time.Location per zone,
// which is immutable and safe for concurrent use, instead of holding
// several KB each and reading the file again whenever a tenant is loaded.
package zonecache

import (
	"sync"
	"time"
)

// cache holds the zones loaded, by name. Only zones that exist are kept,
// so it is bounded by the tz database (a few hundred names).
var cache sync.Map // string → *time.Location

// Load returns the zone name, as time.LoadLocation does, loading it only
// the first time. Errors are not cached: a zone that does not exist costs
// a lookup each time it is asked for.
func Load(name string) (*time.Location, error) {
	if loc, ok := cache.Load(name); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	actual, _ := cache.LoadOrStore(name, loc)
	return actual.(*time.Location), nil
}
