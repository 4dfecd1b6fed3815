#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "domain/order_ref.hpp"
#include "domain/timestamp.hpp"
#include "domain/webhook_delivery.hpp"
#include "net/net.hpp"

namespace mailtrail::webhook {

/// Listener settings (contract.md `webhook.*`, plus deadlines tests can shorten).
struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;  ///< 0 picks a free port; see Server::Port().
  std::string path = "/webhooks/postgrid";
  std::vector<std::string> secrets;  ///< Never logged.
  std::chrono::milliseconds max_age = std::chrono::minutes(10);
  std::size_t max_body = std::size_t{1024} * 1024;
  /// Deadline for the whole request header, counted from the start of the wait; it also bounds
  /// how long an idle keep-alive connection is kept open.
  std::chrono::milliseconds header_timeout = std::chrono::seconds(10);
  /// Deadline for reading the body once the header is in.
  std::chrono::milliseconds body_timeout = std::chrono::seconds(30);
  /// Deadline for writing one response.
  std::chrono::milliseconds write_timeout = std::chrono::seconds(10);
  /// Clock for `received_at` and signature ages; the system clock when empty.
  std::function<domain::Timestamp()> clock;
};

using RecordOutcome = domain::DeliveryRecordOutcome;
using RecordStatus = domain::DeliveryRecordStatus;

/// Stores several deliveries at once (group commit) and reports one outcome per delivery, in
/// order. It must not block the listener's executor: the app's implementation hops to the DB
/// executor (`co_spawn(db, ..., use_awaitable)`), so the listener never waits on SQL itself. An
/// exception (or a wrong number of outcomes) makes every delivery of the batch kUnavailable.
using RecordBatchFn =
    std::function<net::awaitable<std::vector<RecordOutcome>>(std::vector<domain::WebhookDelivery>)>;

/// How the Server records (group commit): deliveries that arrive while a batch is being stored
/// wait and go together in the next one (at most `max_batch`), so under load the database sees
/// one statement and one commit per batch; at low load a batch is a single delivery and nothing
/// waits. Each delivery is still answered only after its batch is stored.
struct GroupCommit {
  RecordBatchFn record;
  std::size_t max_batch = 256;
};

/// Asks for an immediate refresh of `order`, named by the recorded delivery `delivery_id`. Called
/// on the listener's executor; must not block (enqueue and return).
using TriggerFn = std::function<void(domain::OrderRef order, std::int64_t delivery_id)>;

/// The PostGrid webhook listener (issue 7): `POST {path}` on `host:port`, HTTP/1.1 keep-alive.
///
/// Each request has deadlines for header, body and response; bodies over `max_body` get 413 and
/// the connection is closed; other paths 404, other methods on the path 405 (`Allow: POST`); an
/// unparseable request 400 and close. A delivery is verified (Verify), recorded through
/// GroupCommit (refused ones too), and only then answered:
///  - refused: its 400/401 (`text/plain` body = the reason code);
///  - verified and recorded: 200, and TriggerFn is called for an order event; other event types
///    are acknowledged with 200 and trigger nothing ("ignored");
///  - a byte-for-byte replay of a verified delivery (kDuplicate): **200**, nothing triggered
///    (PostGrid retries every non-200, so 409 would only cause more replays);
///  - not recorded (kUnavailable or the recording threw): 503, so PostGrid retries later.
/// Secrets, signatures and bodies are never logged.
///
/// Thread affinity: construct, Start, Stop and read counters from any thread; the sessions run on
/// `executor`, which must be single-threaded (or a strand). Start/bind errors throw
/// boost::system::system_error.
class Server {
 public:
  Server(net::any_io_executor executor, ServerOptions options, GroupCommit record,
         TriggerFn trigger);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds and listens (throws boost::system::system_error when the address is unusable), then
  /// spawns the accept loop on the executor.
  void Start();
  /// The bound port (useful with port 0); 0 before Start.
  std::uint16_t Port() const;
  /// Stops accepting and closes every open connection (posted to the executor). Idempotent.
  void Stop();

  /// Deliveries and requests by result, for metrics: `accepted` (verified order event recorded),
  /// `ignored` (verified non-order event recorded), `duplicate`, `refused_400`, `refused_401`,
  /// `unavailable`, `too_large`, `not_found`, `method_not_allowed`, `bad_request`.
  std::map<std::string, std::uint64_t> Counts() const;
  /// Deliveries waiting for a group-commit batch to start (not counting the batch being stored);
  /// always 0 without GroupCommit.
  std::size_t WaitingForRecording() const;
  /// Refused deliveries by rejection reason code.
  std::map<std::string, std::uint64_t> RefusalCounts() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace mailtrail::webhook
