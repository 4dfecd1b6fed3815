// SqlArrays' array literals read back by PostgreSQL's own array parser: every string survives
// unchanged whatever it holds, and NULL stays NULL (the batched writes depend on it).
#include <gtest/gtest.h>

#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "pg_test_database.hpp"
#include "store/sql_params.hpp"

namespace mailtrail::store::detail {
namespace {

TEST(SqlArraysPgTest, EveryValueRoundTripsThroughUnnest) {
  const std::vector<std::optional<std::string>> values = {
      "plain",
      "",
      "NULL",
      R"(a "quoted" word)",
      R"(back\slash and \" both)",
      R"(\\)",
      "\"",
      "\\",
      "trailing backslash \\",
      "{braces}, commas, and 'single quotes'",
      "  spaces around  ",
      "tab\tnewline\ncarriage\r",
      "unicode: \xc3\xa9\xe2\x82\xac\xf0\x9f\x93\xac",
      R"({"raw":"json","with":["arrays",1,null],"esc":"\"\\u00e9"})",
      std::nullopt,
      std::string(5000, '"'),
  };
  SqlArrays arrays(2);
  for (std::size_t i = 0; i < values.size(); ++i) {
    arrays.Add(static_cast<std::int64_t>(i));
    arrays.Add(values[i]);
    arrays.EndRow();
  }
  SqlParams params;
  arrays.AppendTo(params);

  mailtrail::testing::TestDatabase database;
  pqxx::connection connection(database.dsn());
  pqxx::work tx(connection);
  const pqxx::result rows =
      params.Exec(tx, "SELECT i, v FROM unnest($1::bigint[], $2::text[]) AS t(i, v) ORDER BY i");
  ASSERT_EQ(rows.size(), values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(rows[i][0].as<std::int64_t>(), static_cast<std::int64_t>(i));
    if (values[i]) {
      ASSERT_FALSE(rows[i][1].is_null()) << "row " << i;
      EXPECT_EQ(rows[i][1].as<std::string>(), *values[i]) << "row " << i;
    } else {
      EXPECT_TRUE(rows[i][1].is_null()) << "row " << i;
    }
  }
}

// Exec prepares each statement once per connection: repeated calls (past the five custom plans
// after which PostgreSQL may switch to a generic one), a rolled-back transaction, two statements
// at once, and a new connection (which must prepare again) all give the right rows.
TEST(SqlParamsPgTest, PreparedStatementsSurviveRepeatsRollbacksAndNewConnections) {
  mailtrail::testing::TestDatabase database;
  const std::string twice = "SELECT $1::bigint * 2";
  const std::string plus_one = "SELECT $1::bigint + 1";
  EXPECT_NE(SqlParams::StatementName(twice), SqlParams::StatementName(plus_one));
  EXPECT_EQ(SqlParams::StatementName(twice), SqlParams::StatementName(std::string(twice)));
  for (int connection_round = 0; connection_round < 2; ++connection_round) {
    pqxx::connection connection(database.dsn());
    {
      pqxx::work tx(connection);
      EXPECT_EQ(SqlParams().Add(std::int64_t{5}).Exec(tx, twice)[0][0].as<std::int64_t>(), 10);
      tx.abort();
    }
    pqxx::work tx(connection);
    for (std::int64_t i = 0; i < 12; ++i) {
      EXPECT_EQ(SqlParams().Add(i).Exec(tx, twice)[0][0].as<std::int64_t>(), 2 * i);
      EXPECT_EQ(SqlParams().Add(i).Exec(tx, plus_one)[0][0].as<std::int64_t>(), i + 1);
    }
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM pg_prepared_statements")[0].as<int>(), 2);
    tx.commit();
  }
}

}  // namespace
}  // namespace mailtrail::store::detail
