// No SQL outside src/pg/ (docs/ARCHITECTURE.md, "Layers"): every statement tandem sends to
// PostgreSQL is a named function there. This test reads the sources, takes out their string
// literals and fails on any literal that looks like SQL in a file outside src/pg/.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace tandem {
namespace {

// Files outside src/pg/ that may hold SQL, each with the reason. Keep it short.
const std::map<std::string, std::string> kAllowedOutsidePg = {
    // The embedded coordination store keeps its keys in a SQLite file: that SQL is SQLite's
    // and is the store's own implementation; none of it reaches PostgreSQL.
    {"src/dcs/sqlite_store.cc", "SQLite, the embedded store"},
};

struct Literal {
  int line = 0;
  std::string text;
};

// Skips a quoted literal that starts at `at` (the opening quote), honouring backslash escapes;
// returns the index of its closing quote.
std::size_t skip_quoted(const std::string& source, std::size_t at, char quote, int& line) {
  std::size_t i = at + 1;
  for (; i < source.size() && source[i] != quote; ++i) {
    if (source[i] == '\\') ++i;
    if (i < source.size() && source[i] == '\n') ++line;
  }
  return i;
}

// The string literals of C++ source text: comments and character literals are skipped, raw
// strings are read whole. Adjacent literals stay apart: each line of a query has its keywords.
std::vector<Literal> string_literals(const std::string& source) {
  std::vector<Literal> literals;
  int line = 1;
  for (std::size_t i = 0; i < source.size(); ++i) {
    char c = source[i];
    char previous = i > 0 ? source[i - 1] : ' ';
    if (c == '\n') {
      ++line;
    } else if (source.compare(i, 2, "//") == 0) {
      i = source.find('\n', i) - 1;  // npos - 1 ends the loop
    } else if (source.compare(i, 2, "/*") == 0) {
      std::size_t end = source.find("*/", i + 2);
      if (end == std::string::npos) break;
      line += static_cast<int>(std::count(source.begin() + i, source.begin() + end, '\n'));
      i = end + 1;
    } else if (c == '\'' && !std::isxdigit(static_cast<unsigned char>(previous))) {
      i = skip_quoted(source, i, '\'', line);  // a character literal, not a digit separator
    } else if (c == '"' && previous == 'R') {
      std::size_t open = source.find('(', i);
      // Appended in turn: ")" + a temporary trips g++ 12's -Werror=restrict at -O3.
      std::string close = ")";
      close += source.substr(i + 1, open - i - 1);
      close += '"';
      std::size_t end = open == std::string::npos ? open : source.find(close, open);
      if (end == std::string::npos) break;
      literals.push_back({line, source.substr(open + 1, end - open - 1)});
      line += static_cast<int>(std::count(source.begin() + i, source.begin() + end, '\n'));
      i = end + close.size() - 1;
    } else if (c == '"') {
      int start = line;
      std::size_t end = skip_quoted(source, i, '"', line);
      literals.push_back({start, source.substr(i + 1, end - i - 1)});
      i = end;
    }
  }
  return literals;
}

// Statements and PostgreSQL's functions, in the upper case tandem writes SQL keywords in (an
// English message may say "select" or "checkpoint"; none says "DELETE FROM").
bool looks_like_sql(const std::string& literal) {
  static const std::regex kSql(
      R"(\bSELECT\s|\bINSERT\s+INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b|)"
      R"(\b(CREATE|ALTER|DROP)\s+(ROLE|USER|DATABASE|TABLE|INDEX|VIEW|SCHEMA|EXTENSION|)"
      R"(SYSTEM|PUBLICATION|SUBSCRIPTION|SEQUENCE|FUNCTION|TRIGGER|TABLESPACE)\b|)"
      R"(\b(TRUNCATE|GRANT|REVOKE|VACUUM|SHOW|RESET)\s+\w|\bSET\s+\w+\s*(=|TO\b)|)"
      R"(\bCHECKPOINT\b|\bUNION\s+ALL\b|^\s*(BEGIN|COMMIT|ROLLBACK)\s*;?\s*$|)"
      R"(\b(pg_\w+|current_setting|set_config)\s*\()");
  return std::regex_search(literal, kSql);
}

std::vector<Literal> sql_in(const std::string& source) {
  std::vector<Literal> found;
  for (Literal& literal : string_literals(source)) {
    if (looks_like_sql(literal.text)) found.push_back(std::move(literal));
  }
  return found;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Every C++ file under src/ with the SQL found in it, by path relative to the source tree.
std::map<std::string, std::vector<Literal>> sql_by_file() {
  std::filesystem::path root(TANDEM_SOURCE_DIR);
  std::map<std::string, std::vector<Literal>> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root / "src")) {
    std::string extension = entry.path().extension().string();
    if (extension != ".cc" && extension != ".h") continue;
    std::string path = std::filesystem::relative(entry.path(), root).generic_string();
    files[path] = sql_in(read_file(entry.path()));
  }
  return files;
}

struct ScanCase {
  std::string source;
  std::vector<std::string> expected;  // the literals reported as SQL
};

TEST(SqlInPg, FindsSqlInStringLiteralsOnly) {
  const std::vector<ScanCase> cases = {
      {R"c(q("SELECT pg_is_in_recovery() AS r");)c", {"SELECT pg_is_in_recovery() AS r"}},
      {R"c(x.execute("CHECKPOINT");)c", {"CHECKPOINT"}},
      {R"c(fmt::format("ALTER SYSTEM SET {} = '{}'", k, v);)c", {"ALTER SYSTEM SET {} = '{}'"}},
      {R"c(q("FROM t WHERE " "x = pg_current_wal_lsn()");)c", {"x = pg_current_wal_lsn()"}},
      {"auto s = R\"sql(DROP TABLE t)sql\";", {"DROP TABLE t"}},
      {"char q = '\"'; run(\"SELECT 1\");", {"SELECT 1"}},
      {"int n = 1'000'000; run(\"SELECT 1\");", {"SELECT 1"}},
      {"// run(\"SELECT 1\");\nint x;", {}},
      {"/* \"DROP TABLE t\" */ int x;", {}},
      {R"c(j = {{"state", pg_state_name(s)}};)c", {}},
      {R"x(w(R"({"target": "CREATE", "result": "EQUAL"})");)x", {}},
      {R"c(say("created slot {} on {} (pg_basebackup, fast checkpoint)");)c", {}},
      {R"c(say("the primary must SELECT a standby");)c", {"the primary must SELECT a standby"}},
      {R"c(http("DELETE", "/v3/kv/deleterange");)c", {}},
  };
  for (const ScanCase& scan : cases) {
    std::vector<std::string> found;
    for (const Literal& literal : sql_in(scan.source)) found.push_back(literal.text);
    EXPECT_EQ(found, scan.expected) << scan.source;
  }
}

TEST(SqlInPg, CountsLines) {
  auto found = sql_in("/* a\nb */\n\"x\\\"\"\nR\"(\n)\"\n// c\n'\\n'\nrun(\"SELECT 1\");");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].line, 8);
}

TEST(SqlInPg, NoSqlOutsideSrcPg) {
  auto files = sql_by_file();
  ASSERT_GT(files.size(), 50u) << "found no sources under " << TANDEM_SOURCE_DIR << "/src";
  std::size_t in_pg = 0;
  for (const auto& [path, found] : files) {
    if (path.starts_with("src/pg/")) {
      in_pg += found.size();
      continue;
    }
    if (kAllowedOutsidePg.contains(path)) {
      EXPECT_FALSE(found.empty()) << path << " is allowed SQL but has none: drop it from the list";
      continue;
    }
    for (const Literal& literal : found) {
      ADD_FAILURE() << path << ":" << literal.line << ": SQL outside src/pg/: \"" << literal.text
                    << "\" (put it in a function in src/pg/)";
    }
  }
  EXPECT_GT(in_pg, 20u) << "the scan finds no SQL even in src/pg/: it is broken";
}

}  // namespace
}  // namespace tandem
