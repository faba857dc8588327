package memstore_test

import (
	"testing"

	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/persistence/memstore"
	"github.com/slotd/slotd/persistence/storetest"
)

func TestRecords(t *testing.T) {
	storetest.RunRecords(t, func(t *testing.T) persistence.RecordStore { return memstore.New() })
}
