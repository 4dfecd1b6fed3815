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

}  // namespace
}  // namespace mailtrail::store::detail
