// Runs every ```sql block of docs/sql.md against a small hand-made history and checks the answers
// of the recipes row by row. The blocks are read from the document at test time, so the cookbook
// and this test cannot drift apart: a recipe that stops working, or a new one, shows up here.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <pqxx/pqxx>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "pg_test_database.hpp"
#include "store/migrator.hpp"

namespace mailtrail::docs {
namespace {

// The history, with the right answers worked out in the tests below. Changes are observed
// 10 minutes after PostGrid's updatedAt (api_updated_at). All orders are live except letter_test_1.
//
// letter_cert_1  letters, certified, NY, created/sent 01-01: ready 01-01 -> printing 01-02 ->
//                processed_for_delivery 01-03 (+ tracking number) -> carrier pre_transit 01-03
//                06:00
//                -> in_transit 01-04 06:00 -> delivered, signed by J SMITH, completed 01-06 12:00.
//                Carrier events: pre_transit 01-03 05:00, in_transit 01-04 05:00 (Albany),
//                delivered 01-06 11:00 (Albany). Terminal.
// letter_fc_1    letters, first_class, NY, no tracking, created/sent 01-01: ready 01-01 ->
//                printing 01-02 12:00 -> processed_for_delivery 01-03 -> completed 01-05. Terminal.
// letter_fc_2    letters, first_class, CA, created/sent 01-02, metadata customer C-1042: ready
//                01-02 -> printing 01-03 -> processed_for_delivery 01-04 -> completed 01-08.
//                Terminal.
// postcard_1     postcards, standard_class, TX, created 01-05: ready -> printing 01-06 ->
//                processed_for_delivery 01-07, still there.
// cheque_1       cheques, first_class, created 01-10: ready -> cancelled 01-11. Terminal.
// self_mailer_cert_2  self_mailers, first_class + extraService certified_return_receipt, created
//                01-12: ready -> printing 01-13 -> processed_for_delivery 01-14 (+ tracking) ->
//                carrier in_transit 01-15, still there, not signed.
// letter_recent  letters, first_class, NY: ready 3 days ago (createdAt) -> printing 2 days ago.
// letter_test_1  test mode letter, first_class: ready since 01-01, send date 01-01.
constexpr const char* kHistory = R"sql(
INSERT INTO mailtrail.orders (id, order_type, live, status, mailing_class, extra_service,
    tracking_number, carrier_status, signed_by, cancellation_reason, send_date, created_at,
    updated_at, terminal, metadata, raw) VALUES
 ('letter_cert_1', 'letters', true, 'completed', 'certified', NULL, '9407111899223197428490',
  'delivered', 'J SMITH', NULL, '2026-01-01T00:00Z', '2026-01-01T00:00Z', '2026-01-06T12:00Z', true,
  '{"customer_id": "C-7"}', '{"to": {"countryCode": "US", "provinceOrState": "NY"}}'),
 ('letter_fc_1', 'letters', true, 'completed', 'first_class', NULL, NULL, NULL, NULL, NULL,
  '2026-01-01T00:00Z', '2026-01-01T00:00Z', '2026-01-05T00:00Z', true, NULL,
  '{"to": {"countryCode": "US", "provinceOrState": "NY"}}'),
 ('letter_fc_2', 'letters', true, 'completed', 'first_class', NULL, NULL, NULL, NULL, NULL,
  '2026-01-02T00:00Z', '2026-01-02T00:00Z', '2026-01-08T00:00Z', true,
  '{"customer_id": "C-1042", "campaign": "jan"}',
  '{"to": {"address": {"countryCode": "US", "provinceOrState": "CA"}}}'),
 ('postcard_1', 'postcards', true, 'processed_for_delivery', 'standard_class', NULL, NULL, NULL,
  NULL, NULL, '2026-01-05T00:00Z', '2026-01-05T00:00Z', '2026-01-07T00:00Z', false, NULL,
  '{"to": {"countryCode": "US", "provinceOrState": "TX"}}'),
 ('cheque_1', 'cheques', true, 'cancelled', 'first_class', NULL, NULL, NULL, NULL, 'user_initiated',
  '2026-01-10T00:00Z', '2026-01-10T00:00Z', '2026-01-11T00:00Z', true, NULL, '{"to": "contact_1"}'),
 ('self_mailer_cert_2', 'self_mailers', true, 'processed_for_delivery', 'first_class',
  'certified_return_receipt', '9407000000000000000002', 'in_transit', NULL, NULL,
  '2026-01-12T00:00Z', '2026-01-12T00:00Z', '2026-01-15T00:00Z', false, NULL,
  '{"to": {"countryCode": "US", "provinceOrState": "NJ"}}'),
 ('letter_recent', 'letters', true, 'printing', 'first_class', NULL, NULL, NULL, NULL, NULL,
  now() - interval '3 days', now() - interval '3 days', now() - interval '2 days', false, NULL,
  '{"to": {"countryCode": "US", "provinceOrState": "NY"}}'),
 ('letter_test_1', 'letters', false, 'ready', 'first_class', NULL, NULL, NULL, NULL, NULL,
  '2026-01-01T00:00Z', '2026-01-01T00:00Z', '2026-01-01T00:00Z', false, NULL, NULL);

INSERT INTO mailtrail.order_changes (order_id, field, old_value, new_value, observed_at, source,
    api_updated_at)
SELECT order_id, field, old_value, new_value, api_updated_at + interval '10 minutes', source,
       api_updated_at
FROM (VALUES
 (1, 'letter_cert_1', 'status', NULL, 'ready', 'discovery', timestamptz '2026-01-01T00:00Z'),
 (2, 'letter_cert_1', 'status', 'ready', 'printing', 'poll', '2026-01-02T00:00Z'),
 (3, 'letter_cert_1', 'status', 'printing', 'processed_for_delivery', 'poll', '2026-01-03T00:00Z'),
 (4, 'letter_cert_1', 'tracking_number', NULL, '9407111899223197428490', 'poll', '2026-01-03T00:00Z'),
 (5, 'letter_cert_1', 'carrier_status', NULL, 'pre_transit', 'poll', '2026-01-03T06:00Z'),
 (6, 'letter_cert_1', 'carrier_status', 'pre_transit', 'in_transit', 'poll', '2026-01-04T06:00Z'),
 (7, 'letter_cert_1', 'carrier_status', 'in_transit', 'delivered', 'webhook', '2026-01-06T12:00Z'),
 (8, 'letter_cert_1', 'signed_by', NULL, 'J SMITH', 'webhook', '2026-01-06T12:00Z'),
 (9, 'letter_cert_1', 'status', 'processed_for_delivery', 'completed', 'webhook', '2026-01-06T12:00Z'),
 (10, 'letter_fc_1', 'status', NULL, 'ready', 'discovery', '2026-01-01T00:00Z'),
 (11, 'letter_fc_1', 'status', 'ready', 'printing', 'poll', '2026-01-02T12:00Z'),
 (12, 'letter_fc_1', 'status', 'printing', 'processed_for_delivery', 'poll', '2026-01-03T00:00Z'),
 (13, 'letter_fc_1', 'status', 'processed_for_delivery', 'completed', 'poll', '2026-01-05T00:00Z'),
 (14, 'letter_fc_2', 'status', NULL, 'ready', 'discovery', '2026-01-02T00:00Z'),
 (15, 'letter_fc_2', 'status', 'ready', 'printing', 'poll', '2026-01-03T00:00Z'),
 (16, 'letter_fc_2', 'status', 'printing', 'processed_for_delivery', 'poll', '2026-01-04T00:00Z'),
 (17, 'letter_fc_2', 'status', 'processed_for_delivery', 'completed', 'poll', '2026-01-08T00:00Z'),
 (18, 'postcard_1', 'status', NULL, 'ready', 'discovery', '2026-01-05T00:00Z'),
 (19, 'postcard_1', 'status', 'ready', 'printing', 'poll', '2026-01-06T00:00Z'),
 (20, 'postcard_1', 'status', 'printing', 'processed_for_delivery', 'poll', '2026-01-07T00:00Z'),
 (21, 'cheque_1', 'status', NULL, 'ready', 'discovery', '2026-01-10T00:00Z'),
 (22, 'cheque_1', 'status', 'ready', 'cancelled', 'webhook', '2026-01-11T00:00Z'),
 (23, 'cheque_1', 'cancellation_reason', NULL, 'user_initiated', 'webhook', '2026-01-11T00:00Z'),
 (24, 'self_mailer_cert_2', 'status', NULL, 'ready', 'discovery', '2026-01-12T00:00Z'),
 (25, 'self_mailer_cert_2', 'status', 'ready', 'printing', 'poll', '2026-01-13T00:00Z'),
 (26, 'self_mailer_cert_2', 'status', 'printing', 'processed_for_delivery', 'poll', '2026-01-14T00:00Z'),
 (27, 'self_mailer_cert_2', 'tracking_number', NULL, '9407000000000000000002', 'poll', '2026-01-14T00:00Z'),
 (28, 'self_mailer_cert_2', 'carrier_status', NULL, 'in_transit', 'poll', '2026-01-15T00:00Z'),
 (29, 'letter_recent', 'status', NULL, 'ready', 'discovery', now() - interval '3 days'),
 (30, 'letter_recent', 'status', 'ready', 'printing', 'poll', now() - interval '2 days'),
 (31, 'letter_test_1', 'status', NULL, 'ready', 'discovery', '2026-01-01T00:00Z')
) AS v(seq, order_id, field, old_value, new_value, source, api_updated_at)
ORDER BY seq;

INSERT INTO mailtrail.carrier_tracking_events (order_id, occurred_at, status, message, source,
    city, province_or_state, country_code, postal_or_zip) VALUES
 ('letter_cert_1', '2026-01-03T05:00Z', 'pre_transit', 'Shipping label created', 'USPS',
  NULL, NULL, NULL, NULL),
 ('letter_cert_1', '2026-01-04T05:00Z', 'in_transit', 'Arrived at USPS facility', 'USPS',
  'Albany', 'NY', 'US', '12201'),
 ('letter_cert_1', '2026-01-06T11:00Z', 'delivered', 'Delivered, left with individual', 'USPS',
  'Albany', 'NY', 'US', '12207'),
 ('self_mailer_cert_2', '2026-01-15T00:00Z', 'in_transit', 'In transit to next facility', 'USPS',
  'Newark', 'NJ', 'US', '07101');
)sql";

using Rows = std::vector<std::vector<std::string>>;

struct Recipe {
  std::string name;
  std::string sql;
};

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Every ```sql fenced block, named by its first line `-- cookbook: NAME`.
std::vector<Recipe> ExtractRecipes(const std::string& markdown) {
  std::vector<Recipe> recipes;
  std::istringstream in(markdown);
  std::string line;
  bool inside = false;
  std::string block;
  while (std::getline(in, line)) {
    if (!inside && line == "```sql") {
      inside = true;
      block.clear();
    } else if (inside && line == "```") {
      inside = false;
      const std::string prefix = "-- cookbook: ";
      const auto first_line = block.substr(0, block.find('\n'));
      const std::string name =
          first_line.rfind(prefix, 0) == 0 ? first_line.substr(prefix.size()) : std::string();
      recipes.push_back({name, block});
    } else if (inside) {
      block += line + "\n";
    }
  }
  if (inside) throw std::runtime_error("docs/sql.md: unterminated ```sql block");
  return recipes;
}

// "### mailtrail.VIEW" headings followed by a table whose first column lists the view's columns.
std::map<std::string, std::vector<std::string>> DocumentedViewColumns(const std::string& markdown) {
  std::map<std::string, std::vector<std::string>> views;
  std::istringstream in(markdown);
  std::string line;
  std::string current;
  const std::string heading = "### mailtrail.";
  while (std::getline(in, line)) {
    if (line.rfind(heading, 0) == 0) {
      current = line.substr(heading.size());
      views[current];
    } else if (line.rfind("## ", 0) == 0) {
      current.clear();
    } else if (!current.empty() && line.rfind("| ", 0) == 0) {
      const auto cell = line.substr(2, line.find(" |", 2) - 2);
      if (cell != "column") views[current].push_back(cell);
    }
  }
  return views;
}

std::string Text(const pqxx::field& field) { return field.is_null() ? "NULL" : field.c_str(); }

Rows ToRows(const pqxx::result& result) {
  Rows rows;
  for (const auto& row : result) {
    std::vector<std::string> values;
    for (const auto& field : row) values.push_back(Text(field));
    rows.push_back(std::move(values));
  }
  return rows;
}

std::string Show(const Rows& rows) {
  std::string out;
  for (const auto& row : rows) {
    out += "  ";
    for (const auto& value : row) out += value + " | ";
    out += "\n";
  }
  return out;
}

class CookbookTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    markdown_ =
        new std::string(ReadFile(std::filesystem::path(MAILTRAIL_SOURCE_DIR) / "docs" / "sql.md"));
  }
  static void TearDownTestSuite() {
    delete markdown_;
    markdown_ = nullptr;
  }

  void SetUp() override {
    connection_ = std::make_unique<pqxx::connection>(database_.dsn());
    store::Migrate(*connection_, std::filesystem::path(MAILTRAIL_SOURCE_DIR) / "migrations");
    pqxx::work tx(*connection_);
    tx.exec(kHistory);
    tx.commit();
  }

  static const Recipe& Find(const std::vector<Recipe>& recipes, const std::string& name) {
    for (const auto& recipe : recipes) {
      if (recipe.name == name) return recipe;
    }
    throw std::runtime_error("docs/sql.md has no recipe " + name);
  }

  // Runs one recipe in a transaction that is rolled back, so recipes cannot affect each other.
  Rows Run(const std::string& name) {
    const auto recipes = ExtractRecipes(*markdown_);
    const auto& recipe = Find(recipes, name);
    pqxx::work tx(*connection_);
    tx.exec("SET LOCAL TIME ZONE 'UTC'");
    return ToRows(tx.exec(recipe.sql));
  }

  // The daemon's role, for ALTER DEFAULT PRIVILEGES FOR ROLE mailtrail. Roles are cluster-wide:
  // callers roll `tx` back.
  static void CreateDaemonRole(pqxx::work& tx) {
    tx.exec(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mailtrail') "
        "THEN CREATE ROLE mailtrail; END IF; END $$");
  }

  // The doc's read-only role (readonly-role recipe), inside `tx`, which callers roll back.
  static void CreateReaderRole(pqxx::work& tx, const std::vector<Recipe>& recipes) {
    CreateDaemonRole(tx);
    tx.exec(Find(recipes, "readonly-role").sql);
  }

  // Column `column` of every row.
  static std::vector<std::string> Column(const Rows& rows, std::size_t column) {
    std::vector<std::string> values;
    for (const auto& row : rows) values.push_back(row.at(column));
    return values;
  }

  static std::string* markdown_;
  mailtrail::testing::TestDatabase database_;
  std::unique_ptr<pqxx::connection> connection_;
};

std::string* CookbookTest::markdown_ = nullptr;

// The recipes this test knows. A recipe added to the doc must be added here (with a check).
const std::set<std::string> kRecipes = {
    "view-columns",      "order-timeline",           "find-order",
    "stage-percentiles", "stage-percentiles-window", "stuck-n-days",
    "stuck-view",        "daily-dashboard",          "current-counts",
    "delivery-by-state", "delivery-by-state-period", "certified-signed-by",
    "point-in-time",     "point-in-time-counts",     "readonly-role",
    "bi-materialized"};

TEST_F(CookbookTest, EveryBlockIsNamedOnceAndKnown) {
  const auto recipes = ExtractRecipes(*markdown_);
  std::set<std::string> names;
  for (const auto& recipe : recipes) {
    EXPECT_FALSE(recipe.name.empty()) << "a ```sql block without `-- cookbook: NAME`:\n"
                                      << recipe.sql;
    EXPECT_TRUE(names.insert(recipe.name).second) << "recipe name used twice: " << recipe.name;
  }
  EXPECT_EQ(names, kRecipes);
}

TEST_F(CookbookTest, EveryBlockRuns) {
  const auto recipes = ExtractRecipes(*markdown_);
  ASSERT_FALSE(recipes.empty());
  for (const auto& recipe : recipes) {
    SCOPED_TRACE(recipe.name);
    pqxx::work tx(*connection_);
    tx.exec("SET LOCAL TIME ZONE 'UTC'");
    const bool is_ddl = recipe.name == "readonly-role" || recipe.name == "bi-materialized";
    // Rolled back with tx; bi-materialized grants to the reader role, so it needs it too.
    if (recipe.name == "bi-materialized") CreateReaderRole(tx, recipes);
    if (recipe.name == "readonly-role") CreateDaemonRole(tx);
    try {
      const auto result = tx.exec(recipe.sql);
      if (!is_ddl) {
        EXPECT_GT(result.size(), 0u) << "no rows on the test history";
      }
    } catch (const std::exception& e) {
      ADD_FAILURE() << "recipe " << recipe.name << " failed: " << e.what() << "\n" << recipe.sql;
    }
  }
}

TEST_F(CookbookTest, ViewColumnTablesMatchTheViews) {
  const auto documented = DocumentedViewColumns(*markdown_);
  std::map<std::string, std::vector<std::string>> actual;
  for (const auto& row : Run("view-columns")) actual[row.at(0)].push_back(row.at(1));
  ASSERT_EQ(actual.size(), 5u) << "the five views of contract.md";
  for (const auto& [view, columns] : actual) {
    ASSERT_TRUE(documented.count(view)) << "docs/sql.md has no ### mailtrail." << view;
    EXPECT_EQ(documented.at(view), columns) << "columns of " << view;
  }
  EXPECT_EQ(documented.size(), actual.size());
}

TEST_F(CookbookTest, OrderTimelineInterleavesChangesAndScans) {
  const auto rows = Run("order-timeline");
  ASSERT_EQ(rows.size(), 12u) << Show(rows);
  const std::vector<std::string> fields = {"status",          "status",         "status",
                                           "tracking_number", "carrier_event",  "carrier_status",
                                           "carrier_event",   "carrier_status", "carrier_event",
                                           "carrier_status",  "signed_by",      "status"};
  EXPECT_EQ(Column(rows, 2), fields) << Show(rows);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"2026-01-01 00:10:00+00", "change", "status", "NULL",
                                               "ready", "NULL", "NULL", "discovery"}));
  EXPECT_EQ(rows[8],
            (std::vector<std::string>{"2026-01-06 11:00:00+00", "carrier_event", "carrier_event",
                                      "NULL", "delivered", "Delivered, left with individual",
                                      "Albany, NY, 12207, US", "USPS"}));
  EXPECT_EQ(rows[11][4], "completed");
}

TEST_F(CookbookTest, FindOrderByTrackingNumberOrMetadata) {
  const auto rows = Run("find-order");
  EXPECT_EQ(Column(rows, 0), (std::vector<std::string>{"letter_fc_2", "letter_cert_1"}))
      << Show(rows);
}

// What the stage-percentiles recipe approximates (its text before migration 0008): the exact
// percentile_cont over every ended span in status_durations.
constexpr const char* kStagePercentilesExact = R"sql(
SELECT order_type,
       mailing_class,
       status,
       count(*) AS orders,
       extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY duration)) AS p50,
       extract(epoch FROM percentile_cont(0.9) WITHIN GROUP (ORDER BY duration)) AS p90,
       extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY duration)) AS p99
FROM mailtrail.status_durations
WHERE live AND left_at IS NOT NULL
GROUP BY order_type, mailing_class, status
ORDER BY order_type, mailing_class,
         array_position(ARRAY['ready', 'printing', 'processed_for_delivery', 'completed',
                              'placed', 'filled', 'cancelled'], status)
)sql";

TEST_F(CookbookTest, StagePercentiles) {
  const auto rows = Run("stage-percentiles");
  std::map<std::string, std::vector<std::string>> by_key;
  std::vector<std::string> keys;
  for (const auto& row : rows) {
    const auto key = row[0] + "/" + row[1] + "/" + row[2];
    keys.push_back(key);
    by_key[key] = {row[3], row[4], row[5]};
  }
  // Live orders only, ended stages only, in pipeline order within a type and class.
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "cheques/first_class/ready",
                      "letters/certified/ready",
                      "letters/certified/printing",
                      "letters/certified/processed_for_delivery",
                      "letters/first_class/ready",
                      "letters/first_class/printing",
                      "letters/first_class/processed_for_delivery",
                      "postcards/standard_class/ready",
                      "postcards/standard_class/printing",
                      "self_mailers/first_class/ready",
                      "self_mailers/first_class/printing",
                  }))
      << Show(rows);
  // ready: fc_1 36 h, fc_2 24 h, recent 24 h -> p50 24 h, p90 24 h + 0.8 * 12 h = 33 h 36 min,
  // from the middles of the 1 % buckets (24 h in [1.01^1142, 1.01^1143) s: 24 h 02 min 11 s).
  EXPECT_EQ(by_key["letters/first_class/ready"],
            (std::vector<std::string>{"3", "1 day 00:02:11", "1 day 09:43:23"}));

  // Every row against the exact percentile_cont: the same groups and counts, each percentile
  // within 0.5 % (the half-bucket) plus the rounding to whole seconds.
  pqxx::work tx(*connection_);
  const auto exact = tx.exec(kStagePercentilesExact);
  ASSERT_EQ(exact.size(), rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    SCOPED_TRACE(keys[i]);
    EXPECT_EQ(exact[i][0].as<std::string>() + "/" + exact[i][1].as<std::string>() + "/" +
                  exact[i][2].as<std::string>(),
              keys[i]);
    EXPECT_EQ(exact[i][3].as<std::string>(), rows[i][3]);
    for (int column = 4; column <= 6; ++column) {
      const double approximate =
          tx.exec_params("SELECT extract(epoch FROM $1::interval)::float8", rows[i][column])[0][0]
              .as<double>();
      const double wanted = exact[i][column].as<double>();
      EXPECT_NEAR(approximate, wanted, 0.005 * wanted + 0.5) << "column " << column;
    }
  }
}

// The recent-window recipe is exact: the same spans as status_durations' with entered_at in the
// window (letter_recent's ready of three days ago is the only one in the fixture).
TEST_F(CookbookTest, StagePercentilesForARecentWindowAreExact) {
  const auto rows = Run("stage-percentiles-window");
  pqxx::work tx(*connection_);
  tx.exec("SET LOCAL TIME ZONE 'UTC'");
  const auto exact = ToRows(tx.exec(R"sql(
SELECT order_type, mailing_class, status, count(*),
       justify_hours(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM duration))
                     * interval '1 second'),
       justify_hours(percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM duration))
                     * interval '1 second')
FROM mailtrail.status_durations
WHERE live AND left_at IS NOT NULL AND entered_at >= now() - interval '30 days'
GROUP BY order_type, mailing_class, status
ORDER BY 1, 2, 3
)sql"));
  EXPECT_EQ(rows, exact) << Show(rows);
  ASSERT_EQ(rows.size(), 1u) << Show(rows);
  EXPECT_EQ(rows[0],
            (std::vector<std::string>{"letters", "first_class", "ready", "1", "1 day", "1 day"}));
}

TEST_F(CookbookTest, StuckForMoreThanSevenDays) {
  const auto rows = Run("stuck-n-days");
  // letter_recent (printing for 2 days) is not stuck; terminal orders never are.
  EXPECT_EQ(Column(rows, 0),
            (std::vector<std::string>{"letter_test_1", "postcard_1", "self_mailer_cert_2"}))
      << Show(rows);
  EXPECT_EQ(Column(rows, 2), (std::vector<std::string>{"ready", "processed_for_delivery",
                                                       "processed_for_delivery"}));
  EXPECT_EQ(rows.at(1).at(3), "2026-01-07 00:00:00+00");
}

TEST_F(CookbookTest, StuckView) {
  const auto rows = Run("stuck-view");
  const auto ids_column = Column(rows, 0);
  EXPECT_EQ(std::set<std::string>(ids_column.begin(), ids_column.end()),
            (std::set<std::string>{"letter_test_1", "postcard_1", "self_mailer_cert_2"}))
      << Show(rows);
}

TEST_F(CookbookTest, DailyDashboardShowsTheLastThirtyDays) {
  const auto rows = Run("daily-dashboard");
  // Only letter_recent entered statuses in the last 30 days: ready 3 days ago, printing 2 days ago.
  ASSERT_EQ(rows.size(), 2u) << Show(rows);
  EXPECT_EQ(std::vector<std::string>(rows[0].begin() + 1, rows[0].end()),
            (std::vector<std::string>{"1", "0", "0", "0", "0"}));
  EXPECT_EQ(std::vector<std::string>(rows[1].begin() + 1, rows[1].end()),
            (std::vector<std::string>{"0", "1", "0", "0", "0"}));
}

TEST_F(CookbookTest, CurrentCounts) {
  EXPECT_EQ(Run("current-counts"), (Rows{{"cheques", "cancelled", "1"},
                                         {"letters", "completed", "3"},
                                         {"letters", "printing", "1"},
                                         {"postcards", "processed_for_delivery", "1"},
                                         {"self_mailers", "processed_for_delivery", "1"}}));
}

TEST_F(CookbookTest, DeliveryByState) {
  // cert: sent 01-01 00:00, carrier delivered 01-06 11:00. fc_1: completed (no tracking) 01-05,
  // sent 01-01. fc_2: completed 01-08, sent 01-02 (address nested under to.address).
  EXPECT_EQ(Run("delivery-by-state"),
            (Rows{{"CA", "first_class", "1", "6 days", "6 days"},
                  {"NY", "certified", "1", "5 days 11:00:00", "5 days 11:00:00"},
                  {"NY", "first_class", "1", "4 days", "4 days"}}));
}

TEST_F(CookbookTest, DeliveryByStateForAPeriodCountsCarrierDeliveriesOnly) {
  EXPECT_EQ(Run("delivery-by-state-period"),
            (Rows{{"NY", "1", "5 days 11:00:00", "5 days 11:00:00"}}));
}

TEST_F(CookbookTest, CertifiedSignedBy) {
  const auto rows = Run("certified-signed-by");
  ASSERT_EQ(rows.size(), 2u) << Show(rows);
  EXPECT_EQ(rows[0],
            (std::vector<std::string>{"letter_cert_1", "letters", "certified", "NULL",
                                      "9407111899223197428490", "delivered", "J SMITH",
                                      "2026-01-06 11:00:00+00", "2026-01-06 12:10:00+00"}));
  EXPECT_EQ(rows[1][0], "self_mailer_cert_2");  // certified through the legacy extraService
  EXPECT_EQ(rows[1][6], "NULL");                // not signed yet
  EXPECT_EQ(rows[1][7], "NULL");
}

TEST_F(CookbookTest, PointInTimeReconstructsEachOrder) {
  // 2026-01-04 00:00: what had been observed by then (10 minutes after each updatedAt).
  EXPECT_EQ(
      Run("point-in-time"),
      (Rows{{"letter_cert_1", "letters", "processed_for_delivery", "NULL", "9407111899223197428490",
             "pre_transit", "NULL"},
            {"letter_fc_1", "letters", "processed_for_delivery", "NULL", "NULL", "NULL", "NULL"},
            {"letter_fc_2", "letters", "printing", "NULL", "NULL", "NULL", "NULL"},
            {"letter_test_1", "letters", "ready", "NULL", "NULL", "NULL", "NULL"}}));
}

TEST_F(CookbookTest, PointInTimeCounts) {
  EXPECT_EQ(Run("point-in-time-counts"),
            (Rows{{"printing", "1"}, {"processed_for_delivery", "2"}, {"ready", "1"}}));
}

TEST_F(CookbookTest, ReadOnlyRoleCanReadEveryViewAndWriteNothing) {
  const auto recipes = ExtractRecipes(*markdown_);
  const auto& recipe = Find(recipes, "readonly-role");
  EXPECT_EQ(recipe.sql.find("PASSWORD"), std::string::npos) << "no password in the doc's SQL";
  // Roles are cluster-wide: everything happens in one transaction that is rolled back.
  pqxx::work tx(*connection_);
  CreateReaderRole(tx, recipes);
  const auto settings = tx.exec(
      "SELECT unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
      "WHERE r.rolname = 'mailtrail_reader' ORDER BY 1");
  std::vector<std::string> config;
  for (const auto& row : settings) config.push_back(row[0].c_str());
  EXPECT_NE(std::find(config.begin(), config.end(), "default_transaction_read_only=on"),
            config.end());
  tx.exec("SET LOCAL ROLE mailtrail_reader");
  for (const char* view : {"order_timeline", "status_durations", "stuck_orders",
                           "daily_status_counts", "delivery_performance"}) {
    EXPECT_NO_THROW(tx.exec(std::string("SELECT count(*) FROM mailtrail.") + view)) << view;
  }
  EXPECT_NO_THROW(tx.exec("SELECT count(*) FROM mailtrail.orders"));
  {
    pqxx::subtransaction write(tx, "write");
    EXPECT_THROW(write.exec("UPDATE mailtrail.orders SET status = 'x'"),
                 pqxx::insufficient_privilege);
  }
  {
    pqxx::subtransaction write(tx, "ddl");
    EXPECT_THROW(write.exec("CREATE TABLE mailtrail.sneaky (x int)"), pqxx::insufficient_privilege);
  }
  tx.abort();
}

TEST_F(CookbookTest, BiMaterializedCopiesMatchTheViewsAndRefreshConcurrently) {
  const auto recipes = ExtractRecipes(*markdown_);
  pqxx::work tx(*connection_);
  tx.exec("SET LOCAL TIME ZONE 'UTC'");
  CreateReaderRole(tx, recipes);
  tx.exec(Find(recipes, "bi-materialized").sql);
  // A new order after the copies were made: stale until the refresh the doc prescribes.
  tx.exec(
      "INSERT INTO mailtrail.orders (id, order_type, live, status, created_at, terminal) VALUES "
      "('letter_new', 'letters', true, 'ready', '2026-02-01T00:00Z', false); "
      "INSERT INTO mailtrail.order_changes (order_id, field, new_value, observed_at, source) "
      "VALUES ('letter_new', 'status', 'ready', '2026-02-01T00:05Z', 'discovery')");
  for (const char* view : {"daily_status_counts", "delivery_performance"}) {
    const auto copy = std::string("SELECT t::text FROM bi.") + view + " t ORDER BY 1";
    const auto original = std::string("SELECT t::text FROM mailtrail.") + view + " t ORDER BY 1";
    EXPECT_NO_THROW(tx.exec(std::string("REFRESH MATERIALIZED VIEW CONCURRENTLY bi.") + view))
        << view;
    const auto expected = ToRows(tx.exec(original));
    EXPECT_FALSE(expected.empty()) << view;
    EXPECT_EQ(ToRows(tx.exec(copy)), expected) << view;
  }
  const auto new_day =
      tx.exec("SELECT orders_entered FROM bi.daily_status_counts WHERE day = '2026-02-01'");
  ASSERT_EQ(new_day.size(), 1u) << "the refresh picked up the new order";
  tx.exec("SET LOCAL ROLE mailtrail_reader");
  EXPECT_NO_THROW(tx.exec("SELECT count(*) FROM bi.daily_status_counts"));
  tx.abort();
}

// The recipes as docs/sql.md had them before migration 0006's order_stage_times: straight from
// carrier_tracking_events and order_changes.
constexpr const char* kDeliveryByStatePeriodFromHistory = R"sql(
WITH delivered AS (
    SELECT o.id,
           coalesce(o.raw -> 'to' ->> 'provinceOrState',
                    o.raw -> 'to' -> 'address' ->> 'provinceOrState') AS state,
           coalesce(o.send_date, o.created_at) AS sent_at,
           min(e.occurred_at) AS delivered_at
    FROM mailtrail.orders o
    JOIN mailtrail.carrier_tracking_events e ON e.order_id = o.id AND e.status = 'delivered'
    WHERE o.live
      AND o.send_date >= timestamptz '2026-01-01 00:00Z'
      AND o.send_date <  timestamptz '2026-04-01 00:00Z'
    GROUP BY o.id
)
SELECT state,
       count(*) AS delivered,
       justify_hours(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - sent_at))
                     * interval '1 second') AS p50,
       justify_hours(percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM delivered_at - sent_at))
                     * interval '1 second') AS p90
FROM delivered
GROUP BY state
ORDER BY state
)sql";
constexpr const char* kCertifiedSignedByFromHistory = R"sql(
SELECT o.id, o.order_type, o.mailing_class, o.extra_service, o.tracking_number,
       o.carrier_status, o.signed_by, d.delivered_at, s.signature_recorded_at
FROM mailtrail.orders o
LEFT JOIN (SELECT e.order_id, min(e.occurred_at) AS delivered_at
           FROM mailtrail.carrier_tracking_events e
           WHERE e.status = 'delivered'
           GROUP BY e.order_id) d ON d.order_id = o.id
LEFT JOIN (SELECT c.order_id, min(c.observed_at) AS signature_recorded_at
           FROM mailtrail.order_changes c
           WHERE c.field = 'signed_by' AND c.new_value IS NOT NULL
           GROUP BY c.order_id) s ON s.order_id = o.id
WHERE o.mailing_class LIKE '%certified%' OR o.extra_service LIKE '%certified%'
ORDER BY o.created_at
)sql";

// migrations/0004_faster_views.sql and 0005_set_based_views.sql rewrote the views of 0002 for
// speed: they must not change any answer. Every view and every recipe gives the same rows with
// 0002's definitions (put back in a transaction that is rolled back, so now() is the same) as with
// 0004's, then 0005's, then the installed ones (0006: reading order_status_entries and
// order_stage_times); the recipes 0006 rewrote give what their earlier texts gave.
TEST_F(CookbookTest, FasterViewsGiveTheSameAnswers) {
  const auto migrations = std::filesystem::path(MAILTRAIL_SOURCE_DIR) / "migrations";
  std::string original = ReadFile(migrations / "0002_views.sql");
  for (std::size_t at = original.find("CREATE VIEW"); at != std::string::npos;
       at = original.find("CREATE VIEW", at)) {
    original.replace(at, 11, "CREATE OR REPLACE VIEW");
    at += 22;
  }
  const auto faster = ReadFile(migrations / "0004_faster_views.sql");
  const auto recipes = ExtractRecipes(*markdown_);
  std::vector<std::pair<std::string, std::string>> queries;
  for (const char* view : {"order_timeline", "status_durations", "stuck_orders",
                           "daily_status_counts", "delivery_performance"}) {
    queries.emplace_back(view,
                         std::string("SELECT t::text FROM mailtrail.") + view + " t ORDER BY 1");
  }
  for (const auto& recipe : recipes) {
    if (recipe.name != "readonly-role" && recipe.name != "bi-materialized") {
      queries.emplace_back(recipe.name, recipe.sql);
    }
  }
  pqxx::work tx(*connection_);
  tx.exec("SET LOCAL TIME ZONE 'UTC'");
  // The views as installed (0006 and later read the summary tables), put back at the end.
  std::vector<std::pair<std::string, std::string>> installed;
  for (const char* view :
       {"status_durations", "stuck_orders", "daily_status_counts", "delivery_performance"}) {
    installed.emplace_back(view, tx.exec_params("SELECT pg_get_viewdef($1::regclass)",
                                                std::string("mailtrail.") + view)[0][0]
                                     .as<std::string>());
  }
  // The recipes 0006 let docs/sql.md rewrite, as they were written before, from the history.
  queries.emplace_back("delivery-by-state-period (history)", kDeliveryByStatePeriodFromHistory);
  queries.emplace_back("certified-signed-by (history)", kCertifiedSignedByFromHistory);
  tx.exec(original);
  std::vector<Rows> before;
  for (const auto& [name, sql] : queries) before.push_back(ToRows(tx.exec(sql)));
  tx.exec(faster);
  for (std::size_t i = 0; i < queries.size(); ++i) {
    EXPECT_EQ(ToRows(tx.exec(queries[i].second)), before[i]) << queries[i].first;
  }
  // And 0005's set-based rewrites on top of 0004 (issue 10, benchmark 7).
  tx.exec(ReadFile(migrations / "0005_set_based_views.sql"));
  for (std::size_t i = 0; i < queries.size(); ++i) {
    EXPECT_EQ(ToRows(tx.exec(queries[i].second)), before[i]) << "0005: " << queries[i].first;
  }
  // And the installed definitions, reading the summaries that 0006's triggers keep.
  for (const auto& [view, definition] : installed) {
    tx.exec("CREATE OR REPLACE VIEW mailtrail." + view + " AS " + definition);
  }
  for (std::size_t i = 0; i < queries.size(); ++i) {
    EXPECT_EQ(ToRows(tx.exec(queries[i].second)), before[i]) << "installed: " << queries[i].first;
  }
  // Each rewritten recipe gives what its earlier text gave.
  const auto at = [&](const std::string& name) {
    for (std::size_t i = 0; i < queries.size(); ++i)
      if (queries[i].first == name) return i;
    ADD_FAILURE() << "no query " << name;
    return std::size_t{0};
  };
  EXPECT_EQ(before[at("delivery-by-state-period")],
            before[at("delivery-by-state-period (history)")]);
  EXPECT_EQ(before[at("certified-signed-by")], before[at("certified-signed-by (history)")]);
  EXPECT_FALSE(before[at("certified-signed-by")].empty());
  EXPECT_GT(before[2].size(), 0u) << "stuck_orders has rows to compare";
  tx.abort();
}

}  // namespace
}  // namespace mailtrail::docs
