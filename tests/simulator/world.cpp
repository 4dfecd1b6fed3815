#include "world.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>

namespace mailtrail::sim {
namespace {

constexpr int64_t kMinute = 60'000;
constexpr int64_t kHour = 3'600'000;
constexpr int64_t kDay = 86'400'000;

// Strings interned first, in this order, so their pool ids are compile-time constants.
enum S : uint32_t {
  kEmpty,
  kReady,
  kPrinting,
  kProcessedForDelivery,
  kCompleted,
  kCancelled,
  kPlaced,
  kFilled,
  kEnteredMailStream,
  kOutForDelivery,
  kReturnedToSender,
  kImbInProcess,  // an imbStatus value PostGrid does not document (yet)
  kUnknownCarrier,
  kPreTransit,
  kInTransit,
  kAvailableForPickup,
  kDelivered,
  kReturnToSender,
  kFailure,
  kError,
  kHeldForReview,  // a carrier status PostGrid does not document (yet)
  kLabelCreated,
  kReceivedAtOriginFacility,
  kDeparedOriginFacility,
  kArrivedAtFacility,
  kArrivedAtDestination,
  kReturn,
  kLost,
  kDelayed,
  kCustomsReview,  // a statusDetail PostGrid does not document (yet)
  kFirstClass,
  kStandardClass,
  kExpress,
  kCertified,
  kCertifiedReturnReceipt,
  kRegistered,
  kUspsFirstClass,
  kUserInitiated,
  kInvalidContent,
  kInvalidOrderMailingClass,
  kDigitalOnly,
  kSignedA,
  kSignedB,
  kSignedC,
  kKnownCount
};

constexpr std::array<std::string_view, kKnownCount> kKnown = {
    "",
    "ready",
    "printing",
    "processed_for_delivery",
    "completed",
    "cancelled",
    "placed",
    "filled",
    "entered_mail_stream",
    "out_for_delivery",
    "returned_to_sender",
    "in_process",
    "unknown",
    "pre_transit",
    "in_transit",
    "available_for_pickup",
    "delivered",
    "return_to_sender",
    "failure",
    "error",
    "held_for_review",
    "label_created",
    "received_at_origin_facility",
    "depared_origin_facility",
    "arrived_at_facility",
    "arrived_at_destination",
    "return",
    "lost",
    "delayed",
    "customs_review",
    "first_class",
    "standard_class",
    "express",
    "certified",
    "certified_return_receipt",
    "registered",
    "usps_first_class",
    "user_initiated",
    "invalid_content",
    "invalid_order_mailing_class",
    "digital_only",
    "J SMITH",
    "A NGUYEN",
    "R PATEL",
};

struct TrackingTemplate {
  uint32_t status;
  uint32_t detail;
  std::string_view message;
};
enum Tmpl : uint32_t {
  kTmplLabel,
  kTmplOrigin,
  kTmplDeparted,
  kTmplArrived,
  kTmplOutForDelivery,
  kTmplDelivered,
  kTmplDelayed,
  kTmplReturn,
  kTmplLost,
  kTmplHeld,
};
constexpr std::array<TrackingTemplate, 10> kTemplates = {{
    {kPreTransit, kLabelCreated, "Shipping Label Created, USPS Awaiting Item"},
    {kInTransit, kReceivedAtOriginFacility, "Accepted at USPS Origin Facility"},
    {kInTransit, kDeparedOriginFacility, "Departed USPS Regional Origin Facility"},
    {kInTransit, kArrivedAtFacility, "Arrived at USPS Regional Facility"},
    {kOutForDelivery, kOutForDelivery, "Out for Delivery"},
    {kDelivered, kArrivedAtDestination, "Delivered, Left with Individual"},
    {kInTransit, kDelayed, "In Transit, Arriving Late"},
    {kReturnToSender, kReturn, "Return to Sender Processed"},
    {kFailure, kLost, "Delivery Attempt Failed, Item Lost"},
    {kHeldForReview, kCustomsReview, "Held for Review"},
}};

struct Location {
  std::string_view city, state, zip;
};
constexpr std::array<Location, 12> kLocations = {{
    {"BOSTON", "MA", "02205"},
    {"NEW YORK", "NY", "10199"},
    {"CHICAGO", "IL", "60607"},
    {"DENVER", "CO", "80266"},
    {"SEATTLE", "WA", "98168"},
    {"ATLANTA", "GA", "30320"},
    {"DALLAS", "TX", "75260"},
    {"PHOENIX", "AZ", "85026"},
    {"MIAMI", "FL", "33152"},
    {"PORTLAND", "OR", "97218"},
    {"COLUMBUS", "OH", "43218"},
    {"SAN JOSE", "CA", "95101"},
}};

constexpr std::array<KindInfo, kKindCount> kKinds = {{
    {"letters", "letter", "letter_"},
    {"postcards", "postcard", "postcard_"},
    {"cheques", "cheque", "cheque_"},
    {"self_mailers", "self_mailer", "self_mailer_"},
    {"boxes", "box", "box_"},
    {"snap_packs", "snap_pack", "snap_pack_"},
    {"return_envelope_orders", "return_envelope_order", "return_envelope_order_"},
}};

constexpr std::array<std::string_view, 12> kFieldNames = {"status",
                                                          "imb_status",
                                                          "imb_zip_code",
                                                          "tracking_number",
                                                          "carrier_status",
                                                          "carrier_status_detail",
                                                          "est_delivery_date",
                                                          "signed_by",
                                                          "cancellation_reason",
                                                          "cancellation_note",
                                                          "cancelled_by_user",
                                                          "tracking_update"};

constexpr std::array<std::string_view, 6> kPathNames = {
    "normal", "cancel", "stall_printing", "stall_processed", "return_to_sender", "failure"};

constexpr std::array<std::string_view, 16> kFirstNames = {
    "Ada",    "Grace",   "Alan", "Linus", "Margaret", "Ken",   "Barbara", "Dennis",
    "Edsger", "Frances", "John", "Radia", "Tim",      "Shafi", "Leslie",  "Hedy"};
constexpr std::array<std::string_view, 8> kStreets = {
    "MAIN ST", "OAK AVE", "PINE RD", "MAPLE DR", "CEDAR LN", "ELM ST", "LAKE BLVD", "HILL CT"};

int64_t PrintTime(int64_t send_ms) {
  // PostGrid prints on the day after sendDate, at midnight US eastern (UTC-5 here, no DST).
  const int64_t eastern = send_ms - 5 * kHour;
  int64_t day = eastern / kDay;
  if (eastern % kDay < 0) --day;
  return (day + 1) * kDay + 5 * kHour;
}

void AppendKey(std::string& out, std::string_view key) {
  out.push_back('"');
  out.append(key);
  out += "\":";
}

}  // namespace

const KindInfo& InfoOf(Kind kind) { return kKinds[static_cast<size_t>(kind)]; }

std::optional<Kind> KindFromEndpoint(std::string_view endpoint) {
  for (size_t i = 0; i < kKinds.size(); ++i) {
    if (kKinds[i].endpoint == endpoint) return static_cast<Kind>(i);
  }
  return std::nullopt;
}

std::optional<Kind> KindFromObject(std::string_view object) {
  for (size_t i = 0; i < kKinds.size(); ++i) {
    if (kKinds[i].object == object) return static_cast<Kind>(i);
  }
  return std::nullopt;
}

std::string_view FieldName(Field field) { return kFieldNames[static_cast<size_t>(field)]; }

std::optional<Path> PathFromName(std::string_view name) {
  for (size_t i = 0; i < kPathNames.size(); ++i) {
    if (kPathNames[i] == name) return static_cast<Path>(i);
  }
  return std::nullopt;
}

std::string_view PathName(Path path) { return kPathNames[static_cast<size_t>(path)]; }

// --- SimClock -------------------------------------------------------------------------------

SimClock::SimClock(int64_t start_ms, double speed, bool paused)
    : base_sim_(start_ms), base_real_(Steady::now()), speed_(speed), paused_(paused) {}

int64_t SimClock::Now() const {
  if (paused_ || speed_ <= 0) return base_sim_;
  const auto real_us =
      std::chrono::duration_cast<std::chrono::microseconds>(Steady::now() - base_real_).count();
  return base_sim_ + static_cast<int64_t>(static_cast<double>(real_us) / 1000.0 * speed_);
}

void SimClock::Pause() {
  base_sim_ = Now();
  base_real_ = Steady::now();
  paused_ = true;
}

void SimClock::Resume() {
  base_sim_ = Now();
  base_real_ = Steady::now();
  paused_ = false;
}

void SimClock::Advance(int64_t ms) {
  base_sim_ = Now() + ms;
  base_real_ = Steady::now();
}

void SimClock::SetSpeed(double speed) {
  base_sim_ = Now();
  base_real_ = Steady::now();
  speed_ = speed;
}

// --- StringPool -----------------------------------------------------------------------------

StringPool::StringPool() {
  for (const auto known : kKnown) {
    index_.emplace(std::string(known), static_cast<uint32_t>(strings_.size()));
    strings_.emplace_back(known);
  }
}

uint32_t StringPool::Intern(std::string_view text) {
  if (text.empty()) return 0;
  const auto it = index_.find(std::string(text));
  if (it != index_.end()) return it->second;
  const auto id = static_cast<uint32_t>(strings_.size());
  strings_.emplace_back(text);
  index_.emplace(std::string(text), id);
  return id;
}

std::optional<uint32_t> StringPool::Find(std::string_view text) const {
  const auto it = index_.find(std::string(text));
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

// --- World: construction ----------------------------------------------------------------------

World::World(const WorldOptions& options)
    : seed_(options.seed),
      options_(options),
      clock_(options.start_ms != 0 ? options.start_ms : WallNowMs(), options.speed, true),
      codec_(options.seed) {
  const int64_t start = clock_.Now();
  Rng rng(Mix64(seed_ ^ 0xC0A7AC7ULL));
  const int64_t world_origin = start - static_cast<int64_t>(options.history_days * kDay);
  for (int live = 0; live < 2; ++live) {
    for (int i = 0; i < 24; ++i) {
      Contact c;
      c.live = live != 0;
      c.id = "contact_" + Base62Encode64(Mix64(seed_ * 31 + static_cast<uint64_t>(live * 100 + i)));
      c.first_name = std::string(kFirstNames[rng.Next() % kFirstNames.size()]);
      c.last_name = std::string(kFirstNames[rng.Next() % kFirstNames.size()]) + "son";
      c.company = i % 3 == 0 ? "Sim Corp " + std::to_string(i) : "";
      c.line1 = std::to_string(rng.Range(1, 9999)) + " " +
                std::string(kStreets[rng.Next() % kStreets.size()]);
      if (i % 8 == 7) {
        c.city = "TORONTO";
        c.state = "ON";
        c.zip = "M5V 2T6";
        c.country = "CA";
      } else {
        const auto& loc = kLocations[rng.Next() % kLocations.size()];
        c.city = std::string(loc.city);
        c.state = std::string(loc.state);
        c.zip = std::string(loc.zip);
        c.country = "US";
      }
      c.created_ms = world_origin - 30 * kDay;
      contacts_.push_back(std::move(c));
    }
    const uint64_t envelope_count = std::clamp<uint64_t>(options.orders / 2000, 2, 50);
    for (uint64_t i = 0; i < envelope_count; ++i) {
      Envelope e;
      e.live = live != 0;
      e.id = "return_envelope_" +
             Base62Encode64(Mix64(seed_ * 131 + static_cast<uint64_t>(live) * 1000 + i));
      e.created_ms = world_origin - 10 * kDay;
      e.to = static_cast<uint16_t>(live * 24 + static_cast<int>(i % 24));
      envelope_lists_[live].push_back(static_cast<uint16_t>(envelopes_.size()));
      envelopes_.push_back(std::move(e));
    }
  }
  Generate(options.orders);
  clock_ = SimClock(start, options.speed, options.paused);
}

void World::Generate(uint64_t count) {
  const int64_t start = clock_.Now();
  const int64_t span = static_cast<int64_t>(options_.history_days * kDay);
  orders_.reserve(count + 1024);
  Rng rng(Mix64(seed_ ^ 0x6E6E6E));
  static constexpr std::array<std::pair<Kind, double>, kKindCount> kMix = {{
      {Kind::kLetter, 0.30},
      {Kind::kPostcard, 0.20},
      {Kind::kCheque, 0.15},
      {Kind::kSelfMailer, 0.10},
      {Kind::kBox, 0.05},
      {Kind::kSnapPack, 0.10},
      {Kind::kReo, 0.10},
  }};
  for (uint64_t i = 0; i < count; ++i) {
    const int64_t created =
        start - span +
        (count > 0 ? static_cast<int64_t>(static_cast<double>(span) *
                                          (static_cast<double>(i) + rng.Unit()) /
                                          static_cast<double>(count))
                   : 0);
    AdvanceTo(std::min(created, start));
    Order o;
    o.created_ms = std::min(created, start - 1);
    o.plan_seed = rng.Next();
    double pick = rng.Unit();
    o.kind = Kind::kLetter;
    for (const auto& [kind, weight] : kMix) {
      if (pick < weight) {
        o.kind = kind;
        break;
      }
      pick -= weight;
    }
    o.live = rng.Chance(options_.live_fraction);
    const uint16_t contact_base = o.live ? 24 : 0;
    o.to = static_cast<uint16_t>(contact_base + rng.Next() % 24);
    o.from = static_cast<uint16_t>(contact_base + rng.Next() % 24);
    o.us = contacts_[o.to].country == "US";
    o.send_ms = o.created_ms + rng.Range(10 * kMinute, 30 * kHour);
    const double mc = rng.Unit();
    o.mailing_class = mc < 0.75   ? kFirstClass
                      : mc < 0.92 ? kStandardClass
                      : mc < 0.97 ? kExpress
                                  : kUspsFirstClass;
    if (o.us && (o.kind == Kind::kLetter || o.kind == Kind::kCheque) && rng.Chance(0.15)) {
      const double es = rng.Unit();
      o.extra_service = es < 0.5 ? kCertified : es < 0.8 ? kCertifiedReturnReceipt : kRegistered;
      o.mailing_class = kFirstClass;
    }
    if (!o.us && o.mailing_class == kExpress) o.mailing_class = kFirstClass;
    const double p = rng.Unit();
    o.path = p < 0.80   ? Path::kNormal
             : p < 0.87 ? Path::kCancel
             : p < 0.89 ? Path::kStallPrinting
             : p < 0.92 ? Path::kStallProcessed
             : p < 0.97 ? Path::kReturnToSender
                        : Path::kFailure;
    o.unknown_enums = rng.Chance(options_.unknown_enum_rate);
    if (o.kind == Kind::kReo) {
      const auto& list = envelope_lists_[o.live ? 1 : 0];
      o.envelope = list[rng.Next() % list.size()];
    }
    AddOrder(std::move(o));
  }
  AdvanceTo(start);
}

uint32_t World::AddOrder(Order order) {
  const auto index = static_cast<uint32_t>(orders_.size());
  auto& list = lists_[order.live ? 1 : 0][static_cast<int>(order.kind)];
  order.kind_pos = static_cast<uint32_t>(list.size());
  list.push_back(index);
  if (order.kind == Kind::kReo) envelopes_[order.envelope].orders.push_back(index);
  const bool reo = order.kind == Kind::kReo;
  const int64_t created = order.created_ms;
  orders_.push_back(std::move(order));
  const Mut initial{Field::kStatus, reo ? kPlaced : kReady};
  ApplyMuts(index, created, &initial, 1, true);
  Schedule(index);
  return index;
}

uint32_t World::Create(const CreateSpec& spec) {
  CatchUp();
  Order o;
  o.kind = spec.kind;
  o.live = spec.live;
  o.created_ms = clock_.Now();
  if (!orders_.empty()) {
    // Lists are kept in createdAt order; a paused clock must not produce an older order.
    o.created_ms = std::max(o.created_ms, orders_.back().created_ms + 1);
  }
  o.send_ms = o.created_ms + std::max<int64_t>(0, spec.send_delay_ms);
  o.plan_seed = Mix64(seed_ ^ (orders_.size() * 0x9E37ULL) ^ 0xC4EA7E);
  const uint16_t contact_base = o.live ? 24 : 0;
  o.to = static_cast<uint16_t>(contact_base + (spec.us ? 0 : 7));
  o.from = static_cast<uint16_t>(contact_base + 1);
  o.us = contacts_[o.to].country == "US";
  const uint32_t mc = pool_.Intern(spec.mailing_class.empty() ? "first_class" : spec.mailing_class);
  const uint32_t es = pool_.Intern(spec.extra_service);
  if (mc > 0xFFFF || es > 0xFFFF) throw std::invalid_argument("too many distinct mailing classes");
  o.mailing_class = static_cast<uint16_t>(mc);
  o.extra_service = static_cast<uint16_t>(es);
  o.path = spec.path;
  o.unknown_enums = spec.unknown_enums;
  if (spec.kind == Kind::kReo) {
    const auto& list = envelope_lists_[o.live ? 1 : 0];
    o.envelope = spec.envelope.value_or(list.front());
    if (o.envelope >= envelopes_.size() || envelopes_[o.envelope].live != o.live) {
      throw std::invalid_argument("envelope belongs to the other mode");
    }
  }
  if (spec.description || spec.metadata_json) {
    o.custom = true;
    custom_[static_cast<uint32_t>(orders_.size())] = {spec.description, spec.metadata_json};
  }
  return AddOrder(std::move(o));
}

// --- World: plan and time ------------------------------------------------------------------------

bool World::IsTracked(const Order& o) const {
  if (o.extra_service != 0) return true;
  const std::string_view mc = pool_.Get(o.mailing_class);
  return mc == "express" || mc == "certified" || mc == "certified_return_receipt" ||
         mc == "registered" || mc.find("certified") != std::string_view::npos ||
         mc.find("registered") != std::string_view::npos ||
         mc.find("express") != std::string_view::npos;
}

std::vector<World::PlannedStep> World::BuildPlan(uint32_t index) const {
  const Order& o = orders_[index];
  Rng rng(o.plan_seed);
  std::vector<PlannedStep> steps;
  auto step = [&steps](int64_t t) -> PlannedStep& {
    PlannedStep s{};
    s.t_ms = t;
    steps.push_back(s);
    return steps.back();
  };
  const auto cancel_reason = [&]() -> std::pair<uint32_t, bool> {
    const double r = rng.Unit();
    if (r < 0.7) return {kUserInitiated, true};
    if (r < 0.85) return {kInvalidContent, false};
    if (o.kind == Kind::kCheque && r < 0.93) return {kDigitalOnly, false};
    return {kInvalidOrderMailingClass, false};
  };

  if (o.kind == Kind::kReo) {
    if (!o.live) return steps;  // test return envelope orders are filled by hand (fills endpoint)
    if (o.path == Path::kCancel) {
      auto& s = step(o.created_ms + rng.Range(kHour, 20 * kHour));
      const auto [reason, by_user] = cancel_reason();
      s.Add(Field::kCancelReason, reason);
      s.Add(Field::kCancelledByUser, by_user ? 1 : 0);
      s.Add(Field::kStatus, kCancelled);
    } else if (o.path != Path::kStallPrinting && o.path != Path::kStallProcessed) {
      step(o.created_ms + rng.Range(kDay, 3 * kDay)).Add(Field::kStatus, kFilled);
    }
    return steps;
  }

  const int64_t print_t = PrintTime(o.send_ms);
  if (o.path == Path::kCancel) {
    const int64_t window = std::max<int64_t>(print_t - o.created_ms - kMinute, kMinute);
    auto& s = step(o.created_ms + kMinute / 2 + static_cast<int64_t>(rng.Unit() * window));
    const auto [reason, by_user] = cancel_reason();
    s.Add(Field::kCancelReason, reason);
    s.Add(Field::kCancelledByUser, by_user ? 1 : 0);
    s.Add(Field::kStatus, kCancelled);
    return steps;
  }
  if (!o.live) {
    // postgrid-api.md section 1: a test order jumps to completed when a live one would print.
    step(print_t).Add(Field::kStatus, kCompleted);
    return steps;
  }
  step(print_t).Add(Field::kStatus, kPrinting);
  if (o.path == Path::kStallPrinting) return steps;
  const int64_t pfd_t = print_t + rng.Range(20 * kHour, 44 * kHour);
  step(pfd_t).Add(Field::kStatus, kProcessedForDelivery);

  if (IsTracked(o)) {
    const int64_t tn_t = pfd_t + rng.Range(kHour, 8 * kHour);
    step(tn_t).Add(Field::kTrackingNumber, 1);
    if (o.path == Path::kStallProcessed) return steps;
    uint32_t last_status = 0;
    uint32_t last_detail = 0;
    const auto carrier = [&](int64_t t, uint32_t tmpl, bool with_location) -> PlannedStep& {
      auto& s = step(t);
      const auto& tp = kTemplates[tmpl];
      const auto loc =
          with_location ? static_cast<uint16_t>(1 + rng.Next() % kLocations.size()) : 0;
      s.Add(Field::kTrackingUpdate, tmpl, static_cast<uint16_t>(loc));
      if (tp.status != last_status) s.Add(Field::kCarrierStatus, tp.status);
      if (tp.detail != last_detail) s.Add(Field::kCarrierDetail, tp.detail);
      last_status = tp.status;
      last_detail = tp.detail;
      return s;
    };
    int64_t t = tn_t + rng.Range(2 * kHour, 6 * kHour);
    const int64_t pfd_day = pfd_t / kDay;
    auto& first = carrier(t, kTmplLabel, false);
    first.Add(Field::kEstDelivery, static_cast<uint32_t>(pfd_day + rng.Range(3, 5) + 1));
    t += rng.Range(6 * kHour, 18 * kHour);
    carrier(t, kTmplOrigin, true);
    t += rng.Range(2 * kHour, 8 * kHour);
    carrier(t, kTmplDeparted, true);
    if (o.unknown_enums) {
      t += rng.Range(2 * kHour, 8 * kHour);
      carrier(t, kTmplHeld, true);
    }
    t += rng.Range(8 * kHour, 30 * kHour);
    carrier(t, kTmplArrived, true);
    if (o.path == Path::kReturnToSender) {
      t += rng.Range(kDay, 2 * kDay);
      carrier(t, kTmplDelayed, true);
      t += rng.Range(kDay, 2 * kDay);
      carrier(t, kTmplReturn, true).Add(Field::kStatus, kCompleted);
    } else if (o.path == Path::kFailure) {
      t += rng.Range(kDay, 3 * kDay);
      carrier(t, kTmplLost, false).Add(Field::kStatus, kCompleted);
    } else {
      t += rng.Range(8 * kHour, 20 * kHour);
      carrier(t, kTmplOutForDelivery, true);
      t += rng.Range(3 * kHour, 10 * kHour);
      auto& done = carrier(t, kTmplDelivered, true);
      const std::string_view es = pool_.Get(o.extra_service);
      const std::string_view mc = pool_.Get(o.mailing_class);
      if (es == "certified_return_receipt" || es == "registered" ||
          mc == "certified_return_receipt" || mc == "registered") {
        done.Add(Field::kSignedBy, static_cast<uint32_t>(kSignedA + rng.Next() % 3));
      }
      done.Add(Field::kStatus, kCompleted);
    }
  } else {
    if (o.path == Path::kStallProcessed) return steps;
    step(pfd_t + rng.Range(2 * kDay, 4 * kDay)).Add(Field::kStatus, kCompleted);
    if (o.us) {
      // IMB scans (live US only), some arriving after completed (postgrid-api.md section 4).
      size_t zip = rng.Next() % kLocations.size();
      const auto next_zip = [&] {
        zip = (zip + 1 + rng.Next() % (kLocations.size() - 1)) % kLocations.size();
        return static_cast<uint16_t>(zip);
      };
      uint32_t last_imb = 0;
      const auto imb = [&](int64_t t, uint32_t status) {
        auto& s = step(t);
        if (status != last_imb) s.Add(Field::kImbStatus, status);
        last_imb = status;
        // The ZIP is interned lazily at apply time; extra carries the location index + 1.
        s.Add(Field::kImbZip, 0, static_cast<uint16_t>(next_zip() + 1));
      };
      int64_t t = pfd_t + rng.Range(10 * kHour, 36 * kHour);
      imb(t, kEnteredMailStream);
      if (o.unknown_enums) {
        t += rng.Range(4 * kHour, 12 * kHour);
        imb(t, kImbInProcess);
      }
      t += rng.Range(8 * kHour, 30 * kHour);
      imb(t, kEnteredMailStream);
      t += rng.Range(8 * kHour, 40 * kHour);
      imb(t, o.path == Path::kReturnToSender ? kReturnedToSender : kOutForDelivery);
    }
  }
  std::stable_sort(steps.begin(), steps.end(),
                   [](const PlannedStep& a, const PlannedStep& b) { return a.t_ms < b.t_ms; });
  return steps;
}

void World::Schedule(uint32_t index) {
  const Order& o = orders_[index];
  if (o.next_step == kStepDone) return;
  const auto plan = BuildPlan(index);
  if (o.next_step >= plan.size()) return;
  due_.push(Due{plan[o.next_step].t_ms, index, o.next_step});
}

int64_t World::MutationTime(uint32_t index, int64_t want) const {
  const auto& recs = orders_[index].recs;
  if (!recs.empty() && recs.back().t_ms >= want) return recs.back().t_ms + 1;
  return want;
}

void World::ApplyMuts(uint32_t index, int64_t t_ms, const Mut* muts, size_t n, bool created) {
  Order& o = orders_[index];
  for (size_t i = 0; i < n; ++i) {
    Mut m = muts[i];
    if (m.field == Field::kImbZip && m.value == 0 && m.extra != 0) {
      m.value = pool_.Intern(kLocations[m.extra - 1].zip);
      m.extra = 0;
    }
    o.recs.push_back(Rec{t_ms, m.value, m.field, 0, m.extra});
    if (m.field == Field::kStatus) o.status = static_cast<uint8_t>(m.value);
  }
  ++steps_applied_;
  Emit(index, t_ms, static_cast<uint16_t>(o.recs.size()), static_cast<uint8_t>(n), !created);
}

void World::Emit(uint32_t index, int64_t t_ms, uint16_t rec_end, uint8_t rec_count, bool updated) {
  const Order& o = orders_[index];
  const auto seq = static_cast<uint32_t>(events_.size());
  events_.push_back(Event{t_ms, index, rec_end, rec_count, static_cast<uint8_t>(updated ? 1 : 0)});
  event_index_[o.live ? 1 : 0][static_cast<int>(o.kind)][updated ? 1 : 0].push_back(seq);
  if (listener_) listener_(seq);
}

size_t World::AdvanceTo(int64_t t_ms) {
  size_t applied = 0;
  while (!due_.empty() && due_.top().t_ms <= t_ms) {
    const Due d = due_.top();
    due_.pop();
    Order& o = orders_[d.order];
    if (o.next_step != d.step) continue;  // stale: advanced by hand, cancelled or progressed
    const auto plan = BuildPlan(d.order);
    if (d.step >= plan.size()) continue;
    const auto& s = plan[d.step];
    ApplyMuts(d.order, MutationTime(d.order, s.t_ms), s.muts, s.n, false);
    ++applied;
    ++o.next_step;
    if (o.next_step < plan.size()) due_.push(Due{plan[o.next_step].t_ms, d.order, o.next_step});
  }
  return applied;
}

size_t World::CatchUp() { return AdvanceTo(clock_.Now()); }

size_t World::AdvanceBy(int64_t ms) {
  clock_.Advance(ms);
  return CatchUp();
}

// --- World: actions ---------------------------------------------------------------------------

ActionResult World::Progress(uint32_t index) {
  CatchUp();
  Order& o = orders_[index];
  if (o.kind == Kind::kReo || o.live) return ActionResult::kInvalid;
  uint32_t next = 0;
  switch (o.status) {
    case kReady:
      next = kPrinting;
      break;
    case kPrinting:
      next = kProcessedForDelivery;
      break;
    case kProcessedForDelivery:
      next = kCompleted;
      break;
    default:
      return ActionResult::kInvalid;
  }
  o.manual = true;
  o.next_step = kStepDone;
  Mut muts[2] = {{Field::kStatus, next}, {Field::kTrackingNumber, 1}};
  const bool add_tracking = next == kProcessedForDelivery && IsTracked(o);
  ApplyMuts(index, MutationTime(index, clock_.Now()), muts, add_tracking ? 2 : 1, false);
  return ActionResult::kOk;
}

ActionResult World::Cancel(uint32_t index, std::string_view note, bool with_note) {
  CatchUp();
  Order& o = orders_[index];
  const uint32_t cancellable = o.kind == Kind::kReo ? kPlaced : kReady;
  if (o.status != cancellable) return ActionResult::kInvalid;
  o.next_step = kStepDone;
  Mut muts[4];
  size_t n = 0;
  muts[n++] = {Field::kCancelReason, kUserInitiated};
  muts[n++] = {Field::kCancelledByUser, 1};
  if (with_note) muts[n++] = {Field::kCancelNote, pool_.Intern(note)};
  muts[n++] = {Field::kStatus, kCancelled};
  ApplyMuts(index, MutationTime(index, clock_.Now()), muts, n, false);
  return ActionResult::kOk;
}

ActionResult World::Fill(uint32_t index) {
  CatchUp();
  Order& o = orders_[index];
  if (o.kind != Kind::kReo || o.live || o.status != kPlaced) return ActionResult::kInvalid;
  o.next_step = kStepDone;
  const Mut m{Field::kStatus, kFilled};
  ApplyMuts(index, MutationTime(index, clock_.Now()), &m, 1, false);
  return ActionResult::kOk;
}

ActionResult World::Step(uint32_t index) {
  CatchUp();
  Order& o = orders_[index];
  if (o.next_step == kStepDone) return ActionResult::kInvalid;
  const auto plan = BuildPlan(index);
  if (o.next_step >= plan.size()) return ActionResult::kInvalid;
  const auto& s = plan[o.next_step];
  ApplyMuts(index, MutationTime(index, clock_.Now()), s.muts, s.n, false);
  ++o.next_step;
  // The old heap entry is now stale (step index moved on); schedule the following step.
  if (o.next_step < plan.size()) due_.push(Due{plan[o.next_step].t_ms, index, o.next_step});
  return ActionResult::kOk;
}

// --- World: lookup and folding ----------------------------------------------------------------

std::string World::OrderId(uint32_t index) const {
  return std::string(InfoOf(orders_[index].kind).id_prefix) + codec_.Encode(index);
}

std::optional<uint32_t> World::FindOrder(std::string_view id) const {
  if (id.size() < 12) return std::nullopt;
  const auto index = codec_.Decode(id.substr(id.size() - 11));
  if (!index || *index >= orders_.size()) return std::nullopt;
  const auto i = static_cast<uint32_t>(*index);
  if (id.substr(0, id.size() - 11) != InfoOf(orders_[i].kind).id_prefix) return std::nullopt;
  return i;
}

std::optional<uint16_t> World::FindEnvelope(std::string_view id) const {
  for (size_t i = 0; i < envelopes_.size(); ++i) {
    if (envelopes_[i].id == id) return static_cast<uint16_t>(i);
  }
  return std::nullopt;
}

std::string World::TrackingNumberOf(uint32_t index) const {
  // USPS-like 22 digits, derived from the id so nothing has to be stored.
  uint64_t h = Mix64(seed_ ^ (static_cast<uint64_t>(index) << 8) ^ 0x7A7A);
  std::string out = "9400";
  for (int i = 0; i < 18; ++i) {
    out.push_back(static_cast<char>('0' + h % 10));
    h /= 10;
    if (h == 0) h = Mix64(index + static_cast<uint64_t>(i));
  }
  return out;
}

OrderState World::StateAt(uint32_t index, size_t rec_end) const {
  const Order& o = orders_[index];
  OrderState s;
  rec_end = std::min(rec_end, o.recs.size());
  s.rec_count = rec_end;
  s.updated_ms = o.created_ms;
  for (size_t i = 0; i < rec_end; ++i) {
    const Rec& r = o.recs[i];
    s.updated_ms = std::max(s.updated_ms, r.t_ms);
    switch (r.field) {
      case Field::kStatus:
        s.status = r.value;
        break;
      case Field::kImbStatus:
        s.imb_status = r.value;
        s.imb_date_ms = r.t_ms;
        break;
      case Field::kImbZip:
        s.imb_zip = r.value;
        s.imb_date_ms = r.t_ms;
        break;
      case Field::kTrackingNumber:
        s.tracking_number = r.value != 0;
        break;
      case Field::kCarrierStatus:
        s.carrier_status = r.value;
        break;
      case Field::kCarrierDetail:
        s.carrier_detail = r.value;
        break;
      case Field::kEstDelivery:
        s.est_delivery = r.value;
        break;
      case Field::kSignedBy:
        s.signed_by = r.value;
        break;
      case Field::kCancelReason:
        s.cancel_reason = r.value;
        break;
      case Field::kCancelNote:
        s.cancel_note = r.value;
        break;
      case Field::kCancelledByUser:
        s.cancelled_by_user = r.value != 0;
        break;
      case Field::kTrackingUpdate:
        s.has_carrier = true;
        break;
    }
  }
  return s;
}

OrderState World::StateOf(uint32_t index) const {
  return StateAt(index, orders_[index].recs.size());
}

std::optional<std::string> World::DescriptionOf(uint32_t index) const {
  const Order& o = orders_[index];
  if (o.custom) {
    const auto it = custom_.find(index);
    if (it != custom_.end()) return it->second.first;
  }
  return "Sim " + std::string(InfoOf(o.kind).object) + " #" + std::to_string(index) +
         " for campaign camp_" + std::to_string(o.plan_seed % 20);
}

std::optional<std::string> World::MetadataOf(uint32_t index) const {
  const Order& o = orders_[index];
  if (o.custom) {
    const auto it = custom_.find(index);
    if (it != custom_.end()) return it->second.second;
  }
  return "{\"campaignID\":\"camp_" + std::to_string(o.plan_seed % 20) +
         "\",\"customerRef\":\"cust_" + std::to_string((o.plan_seed >> 20) % 100000) +
         "\",\"batch\":" + std::to_string(index / 1000) + "}";
}

// --- World: rendering -------------------------------------------------------------------------

void World::AppendStringField(std::string& out, std::string_view key, uint32_t id) const {
  AppendKey(out, key);
  AppendJsonString(out, pool_.Get(id));
  out.push_back(',');
}

void World::RenderContact(std::string& out, uint16_t index) const {
  const Contact& c = contacts_[index];
  out += "{\"id\":";
  AppendJsonString(out, c.id);
  out += ",\"object\":\"contact\",\"live\":";
  out += c.live ? "true" : "false";
  out += ",\"firstName\":";
  AppendJsonString(out, c.first_name);
  out += ",\"lastName\":";
  AppendJsonString(out, c.last_name);
  if (!c.company.empty()) {
    out += ",\"companyName\":";
    AppendJsonString(out, c.company);
  }
  out += ",\"addressLine1\":";
  AppendJsonString(out, c.line1);
  out += ",\"addressLine2\":null,\"city\":";
  AppendJsonString(out, c.city);
  out += ",\"provinceOrState\":";
  AppendJsonString(out, c.state);
  out += ",\"postalOrZip\":";
  AppendJsonString(out, c.zip);
  out += ",\"country\":";
  AppendJsonString(out, c.country == "US" ? "UNITED STATES" : "CANADA");
  out += ",\"countryCode\":";
  AppendJsonString(out, c.country);
  out +=
      ",\"skipVerification\":false,\"forceVerifiedStatus\":false,\"addressStatus\":\"verified\","
      "\"createdAt\":\"";
  out += FormatIso(c.created_ms);
  out += "\",\"updatedAt\":\"";
  out += FormatIso(c.created_ms);
  out += "\"}";
}

void World::RenderEnvelope(std::string& out, uint16_t index) const {
  const Envelope& e = envelopes_[index];
  out += "{\"id\":";
  AppendJsonString(out, e.id);
  out += ",\"object\":\"return_envelope\",\"live\":";
  out += e.live ? "true" : "false";
  out += ",\"description\":\"Sim return envelope\",\"available\":";
  out += std::to_string(10000 - e.orders.size() % 10000);
  out += ",\"to\":";
  AppendJsonString(out, contacts_[e.to].id);
  out += ",\"createdAt\":\"";
  out += FormatIso(e.created_ms);
  out += "\",\"updatedAt\":\"";
  out += FormatIso(e.created_ms);
  out += "\"}";
}

void World::RenderOrder(std::string& out, uint32_t index, const OrderState& s, bool expand) {
  const Order& o = orders_[index];
  const KindInfo& info = InfoOf(o.kind);
  out += "{\"id\":\"";
  out += info.id_prefix;
  out += codec_.Encode(index);
  out += "\",\"object\":\"";
  out += info.object;
  out += "\",\"live\":";
  out += o.live ? "true," : "false,";
  if (const auto d = DescriptionOf(index)) {
    out += "\"description\":";
    AppendJsonString(out, *d);
    out.push_back(',');
  }
  AppendStringField(out, "status", s.status);
  if (s.status == kCancelled && s.cancel_reason != 0) {
    out += "\"cancellation\":{\"reason\":";
    AppendJsonString(out, pool_.Get(s.cancel_reason));
    out += ",\"cancelledByUser\":";
    out += s.cancelled_by_user ? "true" : "false";
    if (s.cancel_note != 0) {
      out += ",\"note\":";
      AppendJsonString(out, pool_.Get(s.cancel_note));
    }
    out += "},";
  }
  if (o.kind == Kind::kReo) {
    out += "\"returnEnvelope\":";
    AppendJsonString(out, envelopes_[o.envelope].id);
    out += ",\"quantityOrdered\":";
    out += std::to_string(100 + (o.plan_seed % 10) * 50);
  } else {
    out += "\"to\":";
    if (expand) {
      RenderContact(out, o.to);
    } else {
      AppendJsonString(out, contacts_[o.to].id);
    }
    out += ",\"from\":";
    if (expand) {
      RenderContact(out, o.from);
    } else {
      AppendJsonString(out, contacts_[o.from].id);
    }
    out += ",\"sendDate\":\"";
    out += FormatIso(o.send_ms);
    out += "\",";
    AppendStringField(out, "mailingClass", o.mailing_class);
    if (o.extra_service != 0) AppendStringField(out, "extraService", o.extra_service);
    if (s.imb_status != 0) {
      AppendStringField(out, "imbStatus", s.imb_status);
      out += "\"imbDate\":\"";
      out += FormatIso(s.imb_date_ms);
      out += "\",";
      if (s.imb_zip != 0) AppendStringField(out, "imbZIPCode", s.imb_zip);
    }
    if (s.tracking_number) {
      out += "\"trackingNumber\":\"";
      out += TrackingNumberOf(index);
      out += "\",";
    }
    if (s.has_carrier) {
      out += "\"carrierTracking\":{\"carrier\":\"USPS\",";
      AppendStringField(out, "status", s.carrier_status);
      AppendStringField(out, "statusDetail", s.carrier_detail);
      out += "\"estDeliveryDate\":";
      if (s.est_delivery != 0) {
        out.push_back('"');
        out += FormatIso(static_cast<int64_t>(s.est_delivery - 1) * kDay);
        out.push_back('"');
      } else {
        out += "null";
      }
      out += ",\"signedBy\":";
      if (s.signed_by != 0) {
        AppendJsonString(out, pool_.Get(s.signed_by));
      } else {
        out += "null";
      }
      out += ",\"trackingUpdates\":[";
      bool first = true;
      for (size_t i = 0; i < s.rec_count; ++i) {
        const Rec& r = o.recs[i];
        if (r.field != Field::kTrackingUpdate) continue;
        const auto& tp = kTemplates[r.value];
        if (!first) out.push_back(',');
        first = false;
        out += "{\"message\":";
        AppendJsonString(out, tp.message);
        out += ",\"status\":";
        AppendJsonString(out, pool_.Get(tp.status));
        out += ",\"createdAt\":\"";
        out += FormatIso(r.t_ms);
        out += "\",\"source\":\"USPS\",\"trackingLocation\":";
        if (r.extra == 0) {
          out += "null";
        } else {
          const auto& loc = kLocations[r.extra - 1];
          out += "{\"city\":";
          AppendJsonString(out, loc.city);
          out += ",\"provinceOrState\":";
          AppendJsonString(out, loc.state);
          out += ",\"countryCode\":\"US\",\"postalOrZip\":";
          AppendJsonString(out, loc.zip);
          out.push_back('}');
        }
        out.push_back('}');
      }
      out += "]},";
    }
    out += "\"url\":\"https://pg-prod-bucket-1.s3.amazonaws.com/";
    out += o.live ? "live/" : "test/";
    out += info.id_prefix;
    out += codec_.Encode(index);
    out += ".pdf?X-Amz-Expires=900&X-Amz-Signature=";
    out += Base62Encode64(Mix64(++url_counter_ ^ seed_));
    out.push_back('"');
    switch (o.kind) {
      case Kind::kLetter:
        out += ",\"pageCount\":";
        out += std::to_string(1 + o.plan_seed % 4);
        out += ",\"color\":";
        out += (o.plan_seed & 16) ? "true" : "false";
        out += ",\"doubleSided\":false,\"addressPlacement\":\"top_first_page\"";
        break;
      case Kind::kPostcard:
        out += ",\"size\":\"6x4\",\"pageCount\":2";
        break;
      case Kind::kCheque:
        out += ",\"amount\":";
        out += std::to_string(1000 + o.plan_seed % 100000);
        out += ",\"currencyCode\":\"USD\",\"number\":";
        out += std::to_string(1000 + index % 100000);
        out += ",\"memo\":\"Sim cheque\",\"bankAccount\":\"bank_sim\"";
        break;
      case Kind::kSelfMailer:
        out += ",\"size\":\"8.5x11_bifold\",\"pageCount\":2";
        break;
      case Kind::kBox:
        out += ",\"cheques\":[]";
        break;
      case Kind::kSnapPack:
        out += ",\"size\":\"8.5x11\",\"pageCount\":1";
        break;
      case Kind::kReo:
        break;
    }
  }
  if (const auto m = MetadataOf(index)) {
    out += ",\"metadata\":";
    out += *m;
  }
  // Fields mailtrail does not know: tolerant parsing must ignore them.
  out += ",\"mergeVariables\":{},\"addOns\":[],\"sendDateTimezone\":\"America/New_York\"";
  out += ",\"createdAt\":\"";
  out += FormatIso(o.created_ms);
  out += "\",\"updatedAt\":\"";
  out += FormatIso(s.updated_ms);
  out += "\"}";
}

std::string World::EventId(uint64_t seq) const {
  return "event_" + Base62Encode64(Mix64(seed_ ^ 0xE7E7) ^ (seq * 0x9E3779B97F4A7C15ULL));
}

std::string World::EventType(const Event& e) const {
  return std::string(InfoOf(orders_[e.order].kind).object) + (e.updated ? ".updated" : ".created");
}

void World::RenderUpdatedFields(std::string& out, const Event& e) const {
  const Order& o = orders_[e.order];
  out.push_back('{');
  bool first = true;
  bool carrier_done = false;
  const auto key = [&](std::string_view k) {
    if (!first) out.push_back(',');
    first = false;
    AppendKey(out, k);
  };
  for (size_t i = e.rec_end - e.rec_count; i < e.rec_end; ++i) {
    const Rec& r = o.recs[i];
    switch (r.field) {
      case Field::kStatus:
        key("status");
        AppendJsonString(out, pool_.Get(r.value));
        break;
      case Field::kImbStatus:
        key("imbStatus");
        AppendJsonString(out, pool_.Get(r.value));
        break;
      case Field::kImbZip:
        key("imbZIPCode");
        AppendJsonString(out, pool_.Get(r.value));
        break;
      case Field::kTrackingNumber:
        key("trackingNumber");
        AppendJsonString(out, TrackingNumberOf(e.order));
        break;
      case Field::kCancelReason:
        key("cancellation");
        out += "true";
        break;
      case Field::kCarrierStatus:
      case Field::kCarrierDetail:
      case Field::kEstDelivery:
      case Field::kSignedBy:
      case Field::kTrackingUpdate:
        if (!carrier_done) {
          key("carrierTracking");
          out += "true";
          carrier_done = true;
        }
        break;
      default:
        break;
    }
  }
  out.push_back('}');
}

void World::RenderEvent(std::string& out, uint64_t seq) {
  const Event& e = events_[seq];
  const Order& o = orders_[e.order];
  out += "{\"id\":\"";
  out += EventId(seq);
  out += "\",\"object\":\"event\",\"type\":\"";
  out += EventType(e);
  out += "\",\"live\":";
  out += o.live ? "true" : "false";
  out += ",\"createdAt\":\"";
  out += FormatIso(e.t_ms);
  out += "\",\"data\":";
  RenderOrder(out, e.order, StateAt(e.order, e.rec_end), true);
  out += ",\"updatedFields\":";
  RenderUpdatedFields(out, e);
  out.push_back('}');
}

void World::RenderTruth(std::string& out, uint32_t index) const {
  const Order& o = orders_[index];
  out += "{\"id\":\"";
  out += OrderId(index);
  out += "\",\"object\":\"";
  out += InfoOf(o.kind).object;
  out += "\",\"live\":";
  out += o.live ? "true" : "false";
  out += ",\"path\":\"";
  out += PathName(o.path);
  out += "\",\"manual\":";
  out += o.manual ? "true" : "false";
  out += ",\"createdAt\":\"";
  out += FormatIso(o.created_ms);
  out += "\",\"changes\":[";
  std::array<std::optional<std::string>, 12> last;
  bool first = true;
  for (const Rec& r : o.recs) {
    if (r.field == Field::kTrackingUpdate) continue;
    std::string value;
    switch (r.field) {
      case Field::kTrackingNumber:
        value = r.value ? TrackingNumberOf(index) : "";
        break;
      case Field::kEstDelivery:
        value = r.value ? FormatIso(static_cast<int64_t>(r.value - 1) * kDay) : "";
        break;
      case Field::kCancelledByUser:
        value = r.value ? "true" : "false";
        break;
      default:
        value = std::string(pool_.Get(r.value));
    }
    auto& prev = last[static_cast<size_t>(r.field)];
    if (!first) out.push_back(',');
    first = false;
    out += "{\"field\":\"";
    out += FieldName(r.field);
    out += "\",\"old\":";
    if (prev) {
      AppendJsonString(out, *prev);
    } else {
      out += "null";
    }
    out += ",\"new\":";
    AppendJsonString(out, value);
    out += ",\"at\":\"";
    out += FormatIso(r.t_ms);
    out += "\"}";
    prev = std::move(value);
  }
  out += "],\"trackingUpdates\":[";
  first = true;
  for (const Rec& r : o.recs) {
    if (r.field != Field::kTrackingUpdate) continue;
    const auto& tp = kTemplates[r.value];
    if (!first) out.push_back(',');
    first = false;
    out += "{\"status\":";
    AppendJsonString(out, pool_.Get(tp.status));
    out += ",\"statusDetail\":";
    AppendJsonString(out, pool_.Get(tp.detail));
    out += ",\"message\":";
    AppendJsonString(out, tp.message);
    out += ",\"createdAt\":\"";
    out += FormatIso(r.t_ms);
    out += "\",\"postalOrZip\":";
    if (r.extra == 0) {
      out += "null";
    } else {
      AppendJsonString(out, kLocations[r.extra - 1].zip);
    }
    out.push_back('}');
  }
  out += "],\"plannedSteps\":[";
  if (o.next_step != kStepDone) {
    const auto plan = BuildPlan(index);
    first = true;
    for (size_t i = o.next_step; i < plan.size(); ++i) {
      if (!first) out.push_back(',');
      first = false;
      out += "{\"at\":\"";
      out += FormatIso(plan[i].t_ms);
      out += "\",\"fields\":[";
      for (size_t j = 0; j < plan[i].n; ++j) {
        if (j) out.push_back(',');
        out.push_back('"');
        out += FieldName(plan[i].muts[j].field);
        out.push_back('"');
      }
      out += "]}";
    }
  }
  out += "]}";
}

void World::RenderSummary(std::string& out, uint32_t index) const {
  const Order& o = orders_[index];
  const OrderState s = StateOf(index);
  out += "{\"id\":\"";
  out += OrderId(index);
  out += "\",\"type\":\"";
  out += InfoOf(o.kind).endpoint;
  out += "\",\"live\":";
  out += o.live ? "true" : "false";
  out += ",\"path\":\"";
  out += PathName(o.path);
  out += "\",\"status\":";
  AppendJsonString(out, pool_.Get(s.status));
  out += ",\"imbStatus\":";
  if (s.imb_status) {
    AppendJsonString(out, pool_.Get(s.imb_status));
  } else {
    out += "null";
  }
  out += ",\"trackingNumber\":";
  if (s.tracking_number) {
    AppendJsonString(out, TrackingNumberOf(index));
  } else {
    out += "null";
  }
  out += ",\"carrierStatus\":";
  if (s.carrier_status) {
    AppendJsonString(out, pool_.Get(s.carrier_status));
  } else {
    out += "null";
  }
  if (o.kind == Kind::kReo) {
    out += ",\"returnEnvelope\":";
    AppendJsonString(out, envelopes_[o.envelope].id);
  }
  out += ",\"changes\":";
  out += std::to_string(s.rec_count);
  out += ",\"updatedAt\":\"";
  out += FormatIso(s.updated_ms);
  out += "\"}";
}

}  // namespace mailtrail::sim
