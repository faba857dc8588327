package engine_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/slotd/slotd/engine"
)

// A salon in Rome with one stylist: configure it, book a haircut, and list
// what is left that morning. The 15-minute clean-up after each haircut is a
// buffer: it keeps 10:30 from being offered, but may run past closing.
func ExampleApply() {
	s := engine.NewState("acme")
	now := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC) // passed in: the engine has no clock
	cfg := engine.TenantConfig{
		Name: "Acme Salon", TimeZone: "Europe/Rome",
		Resources: []engine.Resource{{ID: "alice", Name: "Alice", Kind: "staff", TimeZone: "Europe/Rome", Capacity: 1,
			Weekly: map[string][]engine.Range{"tue": {{Start: "09:00", End: "12:00"}}}}},
		Services: []engine.Service{{ID: "cut", Name: "Haircut", DurationMin: 30, BufferAfterMin: 15, Resources: []string{"alice"}}},
	}
	if _, err := engine.Apply(s, engine.Configure{Config: cfg}, now); err != nil {
		fmt.Println(err)
		return
	}

	rome, _ := time.LoadLocation("Europe/Rome")
	ada := engine.Customer{Name: "Ada", Email: "ada@example.com"}
	res, err := engine.Apply(s, engine.Book{BookingID: "b1", ServiceID: "cut", ResourceID: "alice",
		Start: time.Date(2026, 6, 2, 10, 0, 0, 0, rome), Customer: ada}, now)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Events[0].Type, res.Booking.ID, res.Booking.Start.In(rome).Format("Mon 15:04 MST"))

	_, err = engine.Apply(s, engine.Book{BookingID: "b2", ServiceID: "cut", ResourceID: "alice",
		Start: time.Date(2026, 6, 2, 10, 30, 0, 0, rome), Customer: ada}, now)
	var ee *engine.Error
	if errors.As(err, &ee) {
		fmt.Println("b2:", ee.Code)
	}

	slots, err := s.Availability(engine.AvailabilityQuery{ServiceID: "cut", From: "2026-06-02", To: "2026-06-03", TimeZone: "Europe/Rome"}, now)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, sl := range slots {
		fmt.Println(sl.Start.Format("Mon 15:04"), "to", sl.End.Format("15:04"), sl.Resources)
	}
	// Output:
	// booking_confirmed b1 Tue 10:00 CEST
	// b2: slot_taken
	// Tue 09:00 to 09:30 [alice]
	// Tue 11:00 to 11:30 [alice]
	// Tue 11:30 to 12:00 [alice]
}
