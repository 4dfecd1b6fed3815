#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sim_util.hpp"

/// The simulated PostGrid world: orders, their planned lifecycles, ground truth and events.
///
/// Memory model (for 1,000,000 orders in well under 2 GiB): an order is a ~64-byte struct plus a
/// vector of 16-byte change records; its id is derived from its index (IdCodec), every string value
/// is interned, and JSON is rendered on demand from the records. The current state is a fold over
/// the records, and so is the state as of any past event (webhook payloads, the events feed).
namespace mailtrail::sim {

enum class Kind : uint8_t { kLetter, kPostcard, kCheque, kSelfMailer, kBox, kSnapPack, kReo };
inline constexpr int kKindCount = 7;

struct KindInfo {
  std::string_view endpoint;   ///< `letters`, ...; `return_envelope_orders` for Kind::kReo
  std::string_view object;     ///< `letter`, ..., `return_envelope_order`
  std::string_view id_prefix;  ///< `letter_`, ...
};
const KindInfo& InfoOf(Kind kind);
/// `letters` -> kLetter ...; the nested return envelope order endpoint has no flat name here.
std::optional<Kind> KindFromEndpoint(std::string_view endpoint);
std::optional<Kind> KindFromObject(std::string_view object);

/// The fields whose changes are ground truth (contract.md's order_changes fields) plus the
/// cancellation details and carrier tracking updates.
enum class Field : uint8_t {
  kStatus,
  kImbStatus,
  kImbZip,
  kTrackingNumber,
  kCarrierStatus,
  kCarrierDetail,
  kEstDelivery,  ///< value = days since epoch + 1 (0 = null)
  kSignedBy,
  kCancelReason,
  kCancelNote,
  kCancelledByUser,
  kTrackingUpdate,  ///< value = tracking template, extra = location + 1 (0 = null location)
};
std::string_view FieldName(Field field);

/// One change, 16 bytes. String values are ids into the world's StringPool (0 = absent).
struct Rec {
  int64_t t_ms;
  uint32_t value;
  Field field;
  uint8_t pad = 0;
  uint16_t extra = 0;
};
static_assert(sizeof(Rec) == 16);

/// How an order's life is planned.
enum class Path : uint8_t {
  kNormal,          ///< to completed (carrier `delivered` when tracked); REOs: filled
  kCancel,          ///< cancelled while ready
  kStallPrinting,   ///< stops in printing forever
  kStallProcessed,  ///< stops in processed_for_delivery (tracked: number but no carrier data)
  kReturnToSender,  ///< carrier return_to_sender (tracked) or IMB returned_to_sender
  kFailure,         ///< carrier failure / lost (tracked), otherwise like kNormal
};
std::optional<Path> PathFromName(std::string_view name);
std::string_view PathName(Path path);

inline constexpr uint8_t kStepDone = 255;

struct Order {
  std::vector<Rec> recs;
  int64_t created_ms = 0;
  int64_t send_ms = 0;
  uint64_t plan_seed = 0;
  uint32_t kind_pos = 0;  ///< position in its (mode, kind) list; for the events feed
  uint16_t to = 0;        ///< contact index
  uint16_t from = 0;
  uint16_t envelope = 0;  ///< return envelope index (kReo only)
  Kind kind = Kind::kLetter;
  bool live = false;
  uint16_t mailing_class = 0;  ///< string pool id
  uint16_t extra_service = 0;  ///< string pool id or 0
  Path path = Path::kNormal;
  uint8_t next_step = 0;
  uint8_t status = 0;   ///< cached current status (string pool id)
  bool manual = false;  ///< test order progressed by hand: its automatic plan is abandoned
  bool custom = false;  ///< description/metadata live in World::custom_
  bool unknown_enums = false;
  bool us = true;
};

/// The folded state of an order at some point of its history.
struct OrderState {
  uint32_t status = 0, imb_status = 0, imb_zip = 0, carrier_status = 0, carrier_detail = 0,
           signed_by = 0, cancel_reason = 0, cancel_note = 0;
  uint32_t est_delivery = 0;
  bool tracking_number = false, cancelled_by_user = false, has_carrier = false;
  int64_t imb_date_ms = 0;
  int64_t updated_ms = 0;
  size_t rec_count = 0;
};

struct Contact {
  std::string id, first_name, last_name, company, line1, city, state, zip, country;
  bool live = false;
  int64_t created_ms = 0;
};

struct Envelope {
  std::string id;
  bool live = false;
  int64_t created_ms = 0;
  uint16_t to = 0;
  std::vector<uint32_t> orders;  ///< order indices, creation order
};

/// One emitted `<object>.created|updated` event.
struct Event {
  int64_t t_ms;
  uint32_t order;
  uint16_t rec_end;  ///< the order's records [rec_end - rec_count, rec_end) belong to it
  uint8_t rec_count;
  uint8_t updated;  ///< 0 created, 1 updated
};
static_assert(sizeof(Event) == 16);

/// Simulated time: `speed` simulated ms per real ms while running; Advance() jumps.
class SimClock {
 public:
  SimClock(int64_t start_ms, double speed, bool paused);
  int64_t Now() const;
  void Pause();
  void Resume();
  void Advance(int64_t ms);
  void SetSpeed(double speed);
  bool paused() const { return paused_; }
  double speed() const { return speed_; }

 private:
  using Steady = std::chrono::steady_clock;
  int64_t base_sim_;
  Steady::time_point base_real_;
  double speed_;
  bool paused_;
};

/// Interned strings; id 0 is the empty/absent value.
class StringPool {
 public:
  StringPool();
  uint32_t Intern(std::string_view text);
  std::string_view Get(uint32_t id) const { return strings_[id]; }
  std::optional<uint32_t> Find(std::string_view text) const;

 private:
  std::vector<std::string> strings_;
  std::unordered_map<std::string, uint32_t> index_;
};

struct WorldOptions {
  uint64_t seed = 1;
  uint64_t orders = 0;
  int64_t start_ms = 0;     ///< simulated "now" at startup; 0 = wall clock
  double history_days = 5;  ///< seeded orders are created over this many days before start
  double live_fraction = 0.5;
  double unknown_enum_rate = 0.01;
  double speed = 1;
  bool paused = false;
};

/// What the control API may ask for when creating an order.
struct CreateSpec {
  Kind kind = Kind::kLetter;
  bool live = false;
  std::string mailing_class = "first_class";
  std::string extra_service;  ///< empty = none
  Path path = Path::kNormal;
  std::optional<std::string> description;
  std::optional<std::string> metadata_json;  ///< a JSON object, verbatim
  int64_t send_delay_ms = 86400000;          ///< sendDate = createdAt + this
  bool us = true;
  bool unknown_enums = false;
  std::optional<uint16_t> envelope;  ///< kReo: which envelope (default: the mode's first)
};

enum class ActionResult { kOk, kNotFound, kInvalid };

/// The world. Not thread-safe: owned and used by the server's one io_context thread.
class World {
 public:
  explicit World(const WorldOptions& options);

  SimClock& clock() { return clock_; }
  const StringPool& pool() const { return pool_; }
  uint64_t seed() const { return seed_; }

  /// Applies every planned step due at or before the clock's now. Returns how many it applied.
  size_t CatchUp();
  /// Moves the clock forward by `ms` and applies what became due.
  size_t AdvanceBy(int64_t ms);
  /// Applies every planned step due at or before `t_ms` (does not move the clock).
  size_t AdvanceTo(int64_t t_ms);
  /// Number of pending entries in the time-ordered queue (stale ones included).
  size_t queue_size() const { return due_.size(); }

  // --- lookup -----------------------------------------------------------------------------
  /// Resolves an order id; nullopt for anything unknown.
  std::optional<uint32_t> FindOrder(std::string_view id) const;
  std::string OrderId(uint32_t index) const;
  const Order& order(uint32_t index) const { return orders_[index]; }
  size_t order_count() const { return orders_.size(); }
  /// Orders of one (mode, kind) in creation order (oldest first).
  const std::vector<uint32_t>& List(bool live, Kind kind) const {
    return lists_[live ? 1 : 0][static_cast<int>(kind)];
  }
  const std::vector<Envelope>& envelopes() const { return envelopes_; }
  std::optional<uint16_t> FindEnvelope(std::string_view id) const;
  const std::vector<uint16_t>& EnvelopeList(bool live) const { return envelope_lists_[live]; }
  const Contact& contact(uint16_t index) const { return contacts_[index]; }

  OrderState StateOf(uint32_t index) const;
  OrderState StateAt(uint32_t index, size_t rec_end) const;
  std::string TrackingNumberOf(uint32_t index) const;

  // --- rendering ----------------------------------------------------------------------------
  /// Appends the order JSON as of `state`. `expand` = contacts as objects (retrieve) or ids
  /// (lists).
  void RenderOrder(std::string& out, uint32_t index, const OrderState& state, bool expand);
  void RenderEnvelope(std::string& out, uint16_t envelope) const;
  void RenderContact(std::string& out, uint16_t contact) const;
  /// `updatedFields` of an event: `{"status":"printing",...}` (new values, API field names).
  void RenderUpdatedFields(std::string& out, const Event& event) const;
  std::string EventId(uint64_t seq) const;
  /// `{"id":"event_…","object":"event","type",…,"data":{…},"updatedFields":{…}}`.
  void RenderEvent(std::string& out, uint64_t seq);
  std::string EventType(const Event& event) const;
  /// Ground truth (`/__sim/orders/{id}/truth`).
  void RenderTruth(std::string& out, uint32_t index) const;
  /// Current state summary for `/__sim/orders`.
  void RenderSummary(std::string& out, uint32_t index) const;
  /// Description (seeded or custom); nullopt = absent.
  std::optional<std::string> DescriptionOf(uint32_t index) const;
  /// The metadata object's JSON text; nullopt = absent.
  std::optional<std::string> MetadataOf(uint32_t index) const;

  // --- actions -------------------------------------------------------------------------------
  uint32_t Create(const CreateSpec& spec);
  /// Test-mode progression: one stage forward. kInvalid on completed/cancelled (or a REO).
  ActionResult Progress(uint32_t index);
  /// Cancel while `ready` (REOs while `placed`). kInvalid otherwise.
  ActionResult Cancel(uint32_t index, std::string_view note, bool with_note);
  /// Test-mode return envelope order fill: placed -> filled.
  ActionResult Fill(uint32_t index);
  /// Applies the next planned step now. kInvalid when the plan is finished.
  ActionResult Step(uint32_t index);

  // --- events ----------------------------------------------------------------------------------
  const std::vector<Event>& events() const { return events_; }
  const std::vector<uint32_t>& EventIndex(bool live, Kind kind, bool updated) const {
    return event_index_[live ? 1 : 0][static_cast<int>(kind)][updated ? 1 : 0];
  }
  /// Called for every new event (after the startup fast-forward is over).
  void SetEventListener(std::function<void(uint64_t seq)> listener) {
    listener_ = std::move(listener);
  }

  uint64_t steps_applied() const { return steps_applied_; }

 private:
  struct Mut {
    Field field;
    uint32_t value;
    uint16_t extra = 0;
  };
  struct PlannedStep {
    int64_t t_ms;
    uint8_t n = 0;
    Mut muts[6];
    void Add(Field f, uint32_t v, uint16_t e = 0) { muts[n++] = Mut{f, v, e}; }
  };
  struct Due {
    int64_t t_ms;
    uint32_t order;
    uint8_t step;
    bool operator>(const Due& o) const { return t_ms != o.t_ms ? t_ms > o.t_ms : order > o.order; }
  };

  void Generate(uint64_t count);
  uint32_t AddOrder(Order order);
  std::vector<PlannedStep> BuildPlan(uint32_t index) const;
  void Schedule(uint32_t index);
  void ApplyMuts(uint32_t index, int64_t t_ms, const Mut* muts, size_t n, bool created);
  void Emit(uint32_t index, int64_t t_ms, uint16_t rec_end, uint8_t rec_count, bool updated);
  int64_t MutationTime(uint32_t index, int64_t want) const;
  bool IsTracked(const Order& order) const;
  void AppendStringField(std::string& out, std::string_view key, uint32_t id) const;

  uint64_t seed_;
  WorldOptions options_;
  SimClock clock_;
  StringPool pool_;
  IdCodec codec_;
  std::vector<Order> orders_;
  std::vector<uint32_t> lists_[2][kKindCount];
  std::vector<Contact> contacts_;
  std::vector<Envelope> envelopes_;
  std::vector<uint16_t> envelope_lists_[2];
  std::unordered_map<uint32_t, std::pair<std::optional<std::string>, std::optional<std::string>>>
      custom_;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> due_;
  std::vector<Event> events_;
  std::vector<uint32_t> event_index_[2][kKindCount][2];
  std::function<void(uint64_t)> listener_;
  uint64_t url_counter_ = 0;
  uint64_t steps_applied_ = 0;
};

}  // namespace mailtrail::sim
