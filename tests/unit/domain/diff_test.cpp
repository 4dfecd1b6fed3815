// What mailtrail records when it looks at an order again: a specification by examples.
//
// Each row is {what happens, what we stored, what the API returned, what Diff must report}.
// "Recorded" means a row in `order_changes` (a FieldChange) or in `carrier_tracking_events`
// (a new TrackingUpdate).

#include "domain/diff.hpp"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace mailtrail::domain {

// Readable failure output: gtest would otherwise print the structs as bytes.
void PrintTo(const OrderDiff& diff, std::ostream* out) {
  *out << "{stale=" << (diff.stale ? "true" : "false") << ", changes=[";
  for (const auto& change : diff.changes) {
    *out << ' ' << FieldName(change.field) << ": " << change.old_value.value_or("null") << " -> "
         << change.new_value.value_or("null") << ';';
  }
  *out << " ], new_updates=[";
  for (const auto& update : diff.new_updates) {
    *out << " (" << FormatTimestamp(update.occurred_at) << ", " << update.status.raw << ", "
         << update.message << ", " << update.city.value_or("-") << ");";
  }
  *out << " ]}";
}

namespace {

Timestamp At(std::string_view iso) {
  auto parsed = ParseTimestamp(iso);
  if (!parsed) throw std::invalid_argument("bad timestamp in test: " + std::string(iso));
  return *parsed;
}

TrackingUpdate Update(std::string_view at, std::string status, std::string message,
                      std::optional<std::string> city = std::nullopt) {
  TrackingUpdate update;
  update.occurred_at = At(at);
  update.status = CarrierStatus::FromRaw(std::move(status));
  update.message = std::move(message);
  update.source = "USPS";
  update.city = std::move(city);
  return update;
}

// An order as the API would describe it; every call changes one aspect.
class Order {
 public:
  Order() {
    snapshot_.ref = OrderRef{OrderType::kLetter, "letter_1", ""};
    snapshot_.live = true;
    snapshot_.status = OrderStatus::FromRaw("ready");
    snapshot_.mailing_class = "first_class";
    snapshot_.created_at = At("2024-03-01T09:00:00.000Z");
    snapshot_.updated_at = At("2024-03-01T09:00:00.000Z");
  }

  Order& Status(std::string raw) {
    snapshot_.status = OrderStatus::FromRaw(std::move(raw));
    return *this;
  }
  Order& Imb(std::string raw, std::optional<std::string> zip = std::nullopt) {
    snapshot_.imb_status = ImbStatus::FromRaw(std::move(raw));
    snapshot_.imb_zip_code = std::move(zip);
    return *this;
  }
  Order& ImbZip(std::optional<std::string> zip) {
    snapshot_.imb_zip_code = std::move(zip);
    return *this;
  }
  Order& TrackingNumber(std::optional<std::string> number) {
    snapshot_.tracking_number = std::move(number);
    return *this;
  }
  Order& Carrier(std::string status, std::optional<std::string> detail = std::nullopt) {
    auto& carrier = CarrierTrackingRef();
    carrier.carrier = "USPS";
    carrier.status = CarrierStatus::FromRaw(std::move(status));
    carrier.status_detail = std::move(detail);
    return *this;
  }
  Order& EstDelivery(std::optional<std::string_view> iso) {
    CarrierTrackingRef().est_delivery_date =
        iso ? std::optional<Timestamp>(At(*iso)) : std::nullopt;
    return *this;
  }
  Order& SignedBy(std::optional<std::string> name) {
    CarrierTrackingRef().signed_by = std::move(name);
    return *this;
  }
  Order& Updates(std::vector<TrackingUpdate> updates) {
    CarrierTrackingRef().updates = std::move(updates);
    return *this;
  }
  Order& NoCarrierTracking() {
    snapshot_.carrier_tracking.reset();
    return *this;
  }
  Order& Cancelled(std::string reason) {
    snapshot_.status = OrderStatus::FromRaw("cancelled");
    snapshot_.cancellation_reason = std::move(reason);
    return *this;
  }
  Order& UpdatedAt(std::optional<std::string_view> iso) {
    snapshot_.updated_at = iso ? std::optional<Timestamp>(At(*iso)) : std::nullopt;
    return *this;
  }
  Order& Untracked(std::string description, std::string metadata_json) {
    snapshot_.description = std::move(description);
    snapshot_.metadata_json = std::move(metadata_json);
    snapshot_.mailing_class = "certified";
    snapshot_.send_date = At("2024-03-05");
    snapshot_.destination_state = "MA";
    return *this;
  }

  operator OrderSnapshot() const { return snapshot_; }  // NOLINT: rows read better implicit
  operator std::optional<OrderSnapshot>() const { return snapshot_; }  // NOLINT

 private:
  CarrierTracking& CarrierTrackingRef() {
    if (!snapshot_.carrier_tracking) snapshot_.carrier_tracking.emplace();
    return *snapshot_.carrier_tracking;
  }

  OrderSnapshot snapshot_;
};

// What Diff must report.
class Expect {
 public:
  Expect& Change(Field field, std::optional<std::string> old_value,
                 std::optional<std::string> new_value) {
    diff_.changes.push_back(FieldChange{field, std::move(old_value), std::move(new_value)});
    return *this;
  }
  Expect& New(TrackingUpdate update) {
    diff_.new_updates.push_back(std::move(update));
    return *this;
  }
  Expect& Stale() {
    diff_.stale = true;
    return *this;
  }
  operator OrderDiff() const { return diff_; }  // NOLINT

 private:
  OrderDiff diff_;
};

const std::nullopt_t kNothingStored = std::nullopt;
const std::nullopt_t null = std::nullopt;

struct DiffCase {
  std::string name;
  std::optional<OrderSnapshot> stored;
  OrderSnapshot fetched;
  OrderDiff expected;
};

// Carrier updates used across rows, oldest first.
const TrackingUpdate kLabel = Update("2024-03-04T08:00:00Z", "pre_transit", "Label created");
const TrackingUpdate kAccepted =
    Update("2024-03-05T14:10:00Z", "in_transit", "Accepted at USPS origin facility", "BOSTON");
const TrackingUpdate kArrived =
    Update("2024-03-06T02:30:00Z", "in_transit", "Arrived at USPS regional facility", "HARTFORD");
const TrackingUpdate kDelivered =
    Update("2024-03-07T16:45:00Z", "delivered", "Delivered, left with individual", "NEW YORK");

const std::vector<DiffCase>& Cases() {
  static const std::vector<DiffCase> cases = {
      // --- First observation: everything known is news, old values are null. ---
      {"first sight of a new order records its status, from null", kNothingStored, Order(),
       Expect().Change(Field::kStatus, null, "ready")},
      {"first sight of a fully tracked order records every non-null field in contract order and "
       "every carrier update, oldest first",
       kNothingStored,
       Order()
           .Status("completed")
           .Imb("out_for_delivery", "10001")
           .TrackingNumber("9400111")
           .Carrier("delivered", "arrived_at_destination")
           .EstDelivery("2024-03-07")
           .SignedBy("J DOE")
           .Updates({kDelivered, kAccepted, kLabel}),
       Expect()
           .Change(Field::kStatus, null, "completed")
           .Change(Field::kImbStatus, null, "out_for_delivery")
           .Change(Field::kImbZipCode, null, "10001")
           .Change(Field::kTrackingNumber, null, "9400111")
           .Change(Field::kCarrierStatus, null, "delivered")
           .Change(Field::kCarrierStatusDetail, null, "arrived_at_destination")
           .Change(Field::kEstDeliveryDate, null, "2024-03-07T00:00:00.000Z")
           .Change(Field::kSignedBy, null, "J DOE")
           .New(kLabel)
           .New(kAccepted)
           .New(kDelivered)},
      {"first sight with a carrier update listed twice records it once", kNothingStored,
       Order()
           .Status("processed_for_delivery")
           .TrackingNumber("9400111")
           .Carrier("in_transit")
           .Updates({kAccepted, kLabel, kAccepted}),
       Expect()
           .Change(Field::kStatus, null, "processed_for_delivery")
           .Change(Field::kTrackingNumber, null, "9400111")
           .Change(Field::kCarrierStatus, null, "in_transit")
           .New(kLabel)
           .New(kAccepted)},
      {"first sight of a cancelled order records its status and the cancellation reason",
       kNothingStored, Order().Cancelled("user_initiated"),
       Expect()
           .Change(Field::kStatus, null, "cancelled")
           .Change(Field::kCancellationReason, null, "user_initiated")},
      {"first sight of an order in a status this build does not know records it verbatim",
       kNothingStored, Order().Status("awaiting_approval"),
       Expect().Change(Field::kStatus, null, "awaiting_approval")},

      // --- Nothing to record. ---
      {"the same snapshot again records nothing", Order().Status("printing"),
       Order().Status("printing"), Expect()},
      {"changes to untracked fields (description, metadata, mailing class, send date, address) "
       "record nothing",
       Order(),
       Order().Untracked("new text", R"({"campaign":"b"})").UpdatedAt("2024-03-01T10:00:00Z"),
       Expect()},

      // --- Each tracked field. ---
      {"status moving on is recorded with old and new value", Order().Status("ready"),
       Order().Status("printing").UpdatedAt("2024-03-02T00:00:00Z"),
       Expect().Change(Field::kStatus, "ready", "printing")},
      {"two fields changing at once are recorded in contract order", Order().Status("printing"),
       Order()
           .Status("processed_for_delivery")
           .TrackingNumber("9400111")
           .UpdatedAt("2024-03-03T00:00:00Z"),
       Expect()
           .Change(Field::kStatus, "printing", "processed_for_delivery")
           .Change(Field::kTrackingNumber, null, "9400111")},
      {"the first IMB scan records imb_status and imb_zip_code from null",
       Order().Status("processed_for_delivery"),
       Order().Status("processed_for_delivery").Imb("entered_mail_stream", "02101"),
       Expect()
           .Change(Field::kImbStatus, null, "entered_mail_stream")
           .Change(Field::kImbZipCode, null, "02101")},
      {"a later IMB scan records the new imb_status and facility ZIP",
       Order().Imb("entered_mail_stream", "02101"), Order().Imb("out_for_delivery", "10001"),
       Expect()
           .Change(Field::kImbStatus, "entered_mail_stream", "out_for_delivery")
           .Change(Field::kImbZipCode, "02101", "10001")},
      {"a new facility ZIP with the same imb_status records only the ZIP",
       Order().Imb("entered_mail_stream", "02101"), Order().Imb("entered_mail_stream", "06101"),
       Expect().Change(Field::kImbZipCode, "02101", "06101")},
      {"a tracking number that disappears is recorded as a change to null",
       Order().TrackingNumber("9400111"), Order().TrackingNumber(null),
       Expect().Change(Field::kTrackingNumber, "9400111", null)},
      {"carrier tracking appearing records its status, detail and estimate; a null signedBy is "
       "not recorded; its updates are new",
       Order().TrackingNumber("9400111"),
       Order()
           .TrackingNumber("9400111")
           .Carrier("pre_transit", "label_created")
           .EstDelivery("2024-03-08T00:00:00Z")
           .SignedBy(null)
           .Updates({kLabel}),
       Expect()
           .Change(Field::kCarrierStatus, null, "pre_transit")
           .Change(Field::kCarrierStatusDetail, null, "label_created")
           .Change(Field::kEstDeliveryDate, null, "2024-03-08T00:00:00.000Z")
           .New(kLabel)},
      {"delivery records carrier_status, detail, signer and the delivery update",
       Order().Carrier("in_transit", "arrived_at_facility").Updates({kLabel, kAccepted}),
       Order()
           .Status("completed")
           .Carrier("delivered", "arrived_at_destination")
           .SignedBy("J DOE")
           .Updates({kLabel, kAccepted, kDelivered}),
       Expect()
           .Change(Field::kStatus, "ready", "completed")
           .Change(Field::kCarrierStatus, "in_transit", "delivered")
           .Change(Field::kCarrierStatusDetail, "arrived_at_facility", "arrived_at_destination")
           .Change(Field::kSignedBy, null, "J DOE")
           .New(kDelivered)},
      {"a new status detail under the same carrier status records only the detail",
       Order().Carrier("in_transit", "arrived_at_facility"),
       Order().Carrier("in_transit", "departed_facility"),
       Expect().Change(Field::kCarrierStatusDetail, "arrived_at_facility", "departed_facility")},
      {"a moved delivery estimate is recorded as ISO-8601 UTC text",
       Order().Carrier("in_transit").EstDelivery("2024-03-08"),
       Order().Carrier("in_transit").EstDelivery("2024-03-09T12:30:00.5-04:00"),
       Expect().Change(Field::kEstDeliveryDate, "2024-03-08T00:00:00.000Z",
                       "2024-03-09T16:30:00.500Z")},
      {"the same estimate written differently (date only vs midnight UTC) is not a change",
       Order().Carrier("in_transit").EstDelivery("2024-03-08"),
       Order().Carrier("in_transit").EstDelivery("2024-03-08T00:00:00.000Z"), Expect()},
      {"a signer that disappears is recorded as a change to null",
       Order().Carrier("delivered").SignedBy("J DOE"), Order().Carrier("delivered").SignedBy(null),
       Expect().Change(Field::kSignedBy, "J DOE", null)},
      {"carrier tracking that disappears records every carrier field going to null and deletes "
       "no stored update",
       Order()
           .Carrier("in_transit", "in_transit")
           .EstDelivery("2024-03-08")
           .SignedBy("X")
           .Updates({kLabel}),
       Order().NoCarrierTracking(),
       Expect()
           .Change(Field::kCarrierStatus, "in_transit", null)
           .Change(Field::kCarrierStatusDetail, "in_transit", null)
           .Change(Field::kEstDeliveryDate, "2024-03-08T00:00:00.000Z", null)
           .Change(Field::kSignedBy, "X", null)},
      {"a cancellation records the status and the reason", Order(),
       Order().Cancelled("invalid_content"),
       Expect()
           .Change(Field::kStatus, "ready", "cancelled")
           .Change(Field::kCancellationReason, null, "invalid_content")},

      // --- Values this build does not know are kept verbatim, never defaulted. ---
      {"an unknown order status is recorded verbatim", Order().Status("printing"),
       Order().Status("on_hold_for_review"),
       Expect().Change(Field::kStatus, "printing", "on_hold_for_review")},
      {"an unknown IMB status is recorded verbatim", Order().Imb("entered_mail_stream"),
       Order().Imb("forwarded"),
       Expect().Change(Field::kImbStatus, "entered_mail_stream", "forwarded")},
      {"an unknown carrier status and detail are recorded verbatim",
       Order().Carrier("in_transit", "in_transit"),
       Order().Carrier("held_at_customs", "customs_inspection"),
       Expect()
           .Change(Field::kCarrierStatus, "in_transit", "held_at_customs")
           .Change(Field::kCarrierStatusDetail, "in_transit", "customs_inspection")},
      {"leaving an unknown status for a known one is an ordinary change",
       Order().Status("on_hold_for_review"), Order().Status("printing"),
       Expect().Change(Field::kStatus, "on_hold_for_review", "printing")},
      {"raw strings compare exactly: a change of case is a change", Order().Carrier("delivered"),
       Order().Carrier("Delivered"),
       Expect().Change(Field::kCarrierStatus, "delivered", "Delivered")},
      {"an empty string is a value, not null", Order(), Order().TrackingNumber(""),
       Expect().Change(Field::kTrackingNumber, null, "")},

      // --- Carrier updates: each (occurred_at, status, message) is recorded exactly once. ---
      {"an appended update is the only new one",
       Order().Carrier("in_transit").Updates({kLabel, kAccepted}),
       Order().Carrier("in_transit").Updates({kLabel, kAccepted, kArrived}),
       Expect().New(kArrived)},
      {"the API reordering updates creates nothing new",
       Order().Carrier("in_transit").Updates({kLabel, kAccepted, kArrived}),
       Order().Carrier("in_transit").Updates({kArrived, kLabel, kAccepted}), Expect()},
      {"a stored update listed twice by the API creates nothing new",
       Order().Carrier("in_transit").Updates({kLabel, kAccepted}),
       Order().Carrier("in_transit").Updates({kLabel, kAccepted, kAccepted}), Expect()},
      {"a new update listed twice by the API is recorded once",
       Order().Carrier("in_transit").Updates({kLabel}),
       Order().Carrier("in_transit").Updates({kArrived, kLabel, kArrived}), Expect().New(kArrived)},
      {"new updates are returned oldest first whatever order the API used",
       Order().Carrier("in_transit").Updates({kLabel}),
       Order()
           .Status("completed")
           .Carrier("delivered")
           .Updates({kDelivered, kArrived, kAccepted, kLabel}),
       Expect()
           .Change(Field::kStatus, "ready", "completed")
           .Change(Field::kCarrierStatus, "in_transit", "delivered")
           .New(kAccepted)
           .New(kArrived)
           .New(kDelivered)},
      {"two updates at the same instant with different statuses are both recorded",
       Order().Carrier("in_transit").Updates({kLabel}),
       Order()
           .Carrier("out_for_delivery")
           .Updates({kLabel, Update("2024-03-07T06:00:00Z", "out_for_delivery", "Out for delivery"),
                     Update("2024-03-07T06:00:00Z", "in_transit", "Out for delivery")}),
       Expect()
           .Change(Field::kCarrierStatus, "in_transit", "out_for_delivery")
           .New(Update("2024-03-07T06:00:00Z", "in_transit", "Out for delivery"))
           .New(Update("2024-03-07T06:00:00Z", "out_for_delivery", "Out for delivery"))},
      {"two updates at the same instant and status with different messages are both recorded, "
       "ordered by message",
       Order().Carrier("in_transit"),
       Order()
           .Carrier("in_transit")
           .Updates({Update("2024-03-06T02:30:00Z", "in_transit", "Departed facility"),
                     Update("2024-03-06T02:30:00Z", "in_transit", "Arrived at facility")}),
       Expect()
           .New(Update("2024-03-06T02:30:00Z", "in_transit", "Arrived at facility"))
           .New(Update("2024-03-06T02:30:00Z", "in_transit", "Departed facility"))},
      {"an update at the same instant as a stored one but with another message is new",
       Order().Carrier("in_transit").Updates({kArrived}),
       Order()
           .Carrier("in_transit")
           .Updates({kArrived,
                     Update("2024-03-06T02:30:00Z", "in_transit", "Processed through facility")}),
       Expect().New(Update("2024-03-06T02:30:00Z", "in_transit", "Processed through facility"))},
      {"a stored update whose location the carrier corrected is not new (location is not part of "
       "its identity)",
       Order().Carrier("in_transit").Updates({kAccepted}),
       Order()
           .Carrier("in_transit")
           .Updates({Update("2024-03-05T14:10:00Z", "in_transit",
                            "Accepted at USPS origin facility", "SOUTH BOSTON")}),
       Expect()},
      {"stored updates the API no longer lists are not reported (events are never deleted)",
       Order().Carrier("in_transit").Updates({kLabel, kAccepted, kArrived}),
       Order().Carrier("in_transit").Updates({kArrived}), Expect()},
      {"an update with an unknown status is recorded verbatim",
       Order().Carrier("in_transit").Updates({kLabel}),
       Order()
           .Carrier("in_transit")
           .Updates({kLabel, Update("2024-03-05T09:00:00Z", "customs_hold", "Held at customs")}),
       Expect().New(Update("2024-03-05T09:00:00Z", "customs_hold", "Held at customs"))},

      // --- Stale answers: an older updatedAt than the stored one records nothing. ---
      {"an answer older than what is stored is stale: no changes, no updates",
       Order()
           .Status("printing")
           .Carrier("in_transit")
           .Updates({kLabel})
           .UpdatedAt("2024-03-03T00:00:00Z"),
       Order()
           .Status("ready")
           .Carrier("delivered")
           .Updates({kLabel, kDelivered})
           .UpdatedAt("2024-03-02T23:59:59.999Z"),
       Expect().Stale()},
      {"an answer one microsecond older is stale too",
       Order().Status("printing").UpdatedAt("2024-03-03T00:00:00Z"),
       Order().Status("completed").UpdatedAt("2024-03-02T23:59:59.999999Z"), Expect().Stale()},
      {"an equal updatedAt is not stale: differences are recorded",
       Order().Status("printing").UpdatedAt("2024-03-03T00:00:00Z"),
       Order().Status("processed_for_delivery").UpdatedAt("2024-03-03T00:00:00Z"),
       Expect().Change(Field::kStatus, "printing", "processed_for_delivery")},
      {"a stored snapshot without updatedAt cannot make an answer stale",
       Order().Status("printing").UpdatedAt(null),
       Order().Status("completed").UpdatedAt("2024-01-01T00:00:00Z"),
       Expect().Change(Field::kStatus, "printing", "completed")},
      {"an answer without updatedAt is not stale",
       Order().Status("printing").UpdatedAt("2024-03-03T00:00:00Z"),
       Order().Status("completed").UpdatedAt(null),
       Expect().Change(Field::kStatus, "printing", "completed")},
  };
  return cases;
}

// Rows print as their sentence when a test fails.
void PrintTo(const DiffCase& c, std::ostream* out) { *out << '"' << c.name << '"'; }

class DiffSpecification : public testing::TestWithParam<DiffCase> {};

TEST_P(DiffSpecification, RecordsExactlyWhatChanged) {
  const DiffCase& c = GetParam();
  EXPECT_EQ(Diff(c.stored, c.fetched), c.expected) << c.name;
}

std::string RowName(const testing::TestParamInfo<DiffCase>& info) {
  std::string name = std::to_string(info.index) + "_";
  for (char ch : info.param.name) {
    const bool alnum =
        (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
    if (alnum)
      name += ch;
    else if (name.back() != '_')
      name += '_';
  }
  if (name.size() > 90) name.resize(90);
  while (name.back() == '_') name.pop_back();
  return name;
}

INSTANTIATE_TEST_SUITE_P(Rows, DiffSpecification, testing::ValuesIn(Cases()), RowName);

TEST(DiffTest, TableHasAtLeastThirtyRows) { EXPECT_GE(Cases().size(), 30u); }

TEST(DiffTest, EveryNewUpdateKeepsItsLocationAndSource) {
  // new_updates are copies of the fetched entries, not just their keys: the store writes the
  // location columns from them.
  const OrderDiff diff = Diff(std::nullopt, Order().Carrier("in_transit").Updates({kAccepted}));
  ASSERT_EQ(diff.new_updates.size(), 1u);
  EXPECT_EQ(diff.new_updates[0].city, "BOSTON");
  EXPECT_EQ(diff.new_updates[0].source, "USPS");
}

TEST(DiffTest, DuplicateKeyKeepsTheFirstOccurrenceInApiOrder) {
  const TrackingUpdate first = Update("2024-03-05T14:10:00Z", "in_transit", "Accepted", "FIRST");
  const TrackingUpdate second = Update("2024-03-05T14:10:00Z", "in_transit", "Accepted", "SECOND");
  const OrderDiff diff =
      Diff(std::nullopt, Order().Carrier("in_transit").Updates({first, kLabel, second}));
  ASSERT_EQ(diff.new_updates.size(), 2u);
  EXPECT_EQ(diff.new_updates[1].city, "FIRST");
}

TEST(DiffTest, IsPureAndDeterministic) {
  const std::optional<OrderSnapshot> stored = Order().Carrier("in_transit").Updates({kLabel});
  const OrderSnapshot fetched = Order().Carrier("delivered").Updates({kDelivered, kLabel});
  const auto stored_copy = stored;
  const auto fetched_copy = fetched;
  const OrderDiff first = Diff(stored, fetched);
  EXPECT_EQ(Diff(stored, fetched), first);
  EXPECT_EQ(stored, stored_copy);
  EXPECT_EQ(fetched, fetched_copy);
}

TEST(DiffTest, ApplyingTheDiffLeavesNothingToRecord) {
  // After the store writes a diff, diffing the same answer again must be empty: this is what
  // makes a replayed webhook or a repeated poll record nothing.
  for (const DiffCase& c : Cases()) {
    if (c.expected.stale) continue;
    EXPECT_EQ(Diff(c.fetched, c.fetched), OrderDiff{}) << c.name;
  }
}

TEST(FieldNameTest, ContractNamesInEmissionOrder) {
  std::vector<std::string_view> names;
  for (Field field : kAllFields) names.push_back(FieldName(field));
  EXPECT_EQ(names,
            (std::vector<std::string_view>{
                "status", "imb_status", "imb_zip_code", "tracking_number", "carrier_status",
                "carrier_status_detail", "est_delivery_date", "signed_by", "cancellation_reason"}));
}

}  // namespace
}  // namespace mailtrail::domain
