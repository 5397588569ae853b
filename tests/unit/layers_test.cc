// docs/ARCHITECTURE.md's layer table is the build: every library under src/ has a row, the row's
// "links" cell names exactly what the library's target_link_libraries names, a layer links only
// the layers of the rows above it, and a file under src/ includes only headers of its own folder
// or of the layers its library reaches through its links.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace tandem {
namespace {

struct Layer {
  std::string folder;           // "src/pg", or "src/main.cc" for the binary
  std::string library;          // the CMake target
  std::set<std::string> links;  // CMake targets: "pg" in the table is tandem_pg
};

// What the CMake files say: each target under src/ with the file that defines it and its links.
struct Target {
  std::string defined_in;  // "src/pg/CMakeLists.txt", or "CMakeLists.txt"
  std::set<std::string> links;
};

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string trim(const std::string& text) {
  std::size_t begin = text.find_first_not_of(" \t`");
  if (begin == std::string::npos) return "";
  std::size_t end = text.find_last_not_of(" \t`");
  return text.substr(begin, end - begin + 1);
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, separator);) parts.push_back(trim(part));
  return parts;
}

// The cells of a Markdown table row ("| a | b |" -> {"a", "b"}).
std::vector<std::string> cells(const std::string& line) {
  std::vector<std::string> parts = split(line, '|');
  if (!parts.empty()) parts.erase(parts.begin());  // before the first '|'
  return parts;
}

// The first table under "## Layers", in its order; its columns found by their headers "folder",
// "library" and "links". A cell of links names a layer by its folder's last part ("pg") and
// anything else by its CMake target (`PkgConfig::LIBPQ`). Empty when there is no such table.
std::vector<Layer> read_layer_table(const std::string& markdown) {
  std::vector<std::vector<std::string>> rows;
  std::stringstream in(markdown);
  bool in_section = false;
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("## ")) {
      if (!rows.empty()) break;
      in_section = line == "## Layers";
    } else if (in_section && line.starts_with("|")) {
      rows.push_back(cells(line));
    } else if (!rows.empty()) {
      break;  // the table ended
    }
  }
  if (rows.size() < 2) return {};
  const std::vector<std::string>& header = rows[0];
  auto column = [&](const std::string& name) {
    for (std::size_t i = 0; i < header.size(); ++i) {
      if (header[i] == name || header[i].starts_with(name + " ")) return i;
    }
    return header.size();
  };
  std::size_t folder = column("folder"), library = column("library"), links = column("links");
  if (folder == header.size() || library == header.size() || links == header.size()) return {};
  std::vector<Layer> layers;
  for (std::size_t r = 2; r < rows.size(); ++r) {  // rows[1] is the |---| line
    if (rows[r].size() < header.size()) continue;
    layers.push_back({rows[r][folder], rows[r][library], {}});
  }
  for (std::size_t r = 2, l = 0; r < rows.size(); ++r) {
    if (rows[r].size() < header.size()) continue;
    for (const std::string& name : split(rows[r][links], ',')) {
      std::string target = name;
      for (const Layer& layer : layers) {
        if (layer.folder == "src/" + name) target = layer.library;
      }
      if (!target.empty()) layers[l].links.insert(target);
    }
    ++l;
  }
  return layers;
}

// The add_library/add_executable targets and the target_link_libraries of one CMake file.
void read_cmake(const std::string& text, const std::string& defined_in,
                std::map<std::string, Target>& targets) {
  static const std::regex kComment("#[^\n]*");
  static const std::regex kAdd(R"((add_library|add_executable)\s*\(\s*([\w.:-]+))");
  static const std::regex kLink(R"(target_link_libraries\s*\(([^)]*)\))");
  std::string code = std::regex_replace(text, kComment, "");
  for (std::sregex_iterator it(code.begin(), code.end(), kAdd), end; it != end; ++it) {
    targets[(*it)[2]].defined_in = defined_in;
  }
  for (std::sregex_iterator it(code.begin(), code.end(), kLink), end; it != end; ++it) {
    std::stringstream words((*it)[1].str());
    std::string target;
    words >> target;
    if (!targets.contains(target)) continue;  // defined in another file
    for (std::string word; words >> word;) {
      if (word != "PUBLIC" && word != "PRIVATE" && word != "INTERFACE") {
        targets[target].links.insert(word);
      }
    }
  }
}

// The top-level CMakeLists.txt (the binary) and every src/*/CMakeLists.txt.
std::map<std::string, Target> read_build(const std::filesystem::path& root) {
  std::map<std::string, Target> targets;
  read_cmake(read_file(root / "CMakeLists.txt"), "CMakeLists.txt", targets);
  for (const auto& entry : std::filesystem::directory_iterator(root / "src")) {
    std::filesystem::path file = entry.path() / "CMakeLists.txt";
    if (!std::filesystem::exists(file)) continue;
    read_cmake(read_file(file), std::filesystem::relative(file, root).generic_string(), targets);
  }
  // The top-level file also adds the tests' and the benchmarks' subdirectories: only what it
  // defines itself and what src/ defines counts.
  return targets;
}

std::string listed(const std::set<std::string>& names) {
  std::string text;
  for (const std::string& name : names) {
    text += text.empty() ? "" : ", ";
    text += name;
  }
  return text.empty() ? "nothing" : text;
}

// Where the table and the build disagree, one sentence each; empty when they agree.
std::vector<std::string> disagreements(const std::vector<Layer>& table,
                                       const std::map<std::string, Target>& build) {
  std::vector<std::string> problems;
  std::set<std::string> above;  // the libraries of the rows read so far
  for (const Layer& layer : table) {
    auto target = build.find(layer.library);
    std::string cmake =
        layer.folder.ends_with(".cc") ? "CMakeLists.txt" : layer.folder + "/CMakeLists.txt";
    if (target == build.end() || target->second.defined_in != cmake) {
      problems.push_back(layer.library + " (row " + layer.folder + ") is not defined in " + cmake);
    } else if (target->second.links != layer.links) {
      problems.push_back(layer.library + " links " + listed(target->second.links) +
                         " in CMake, but its row says " + listed(layer.links));
    }
    for (const std::string& link : layer.links) {
      bool is_layer = false;
      for (const Layer& other : table) is_layer = is_layer || other.library == link;
      if (is_layer && !above.contains(link)) {
        problems.push_back(layer.library + " links " + link +
                           ", which is not a layer below it (a row above it in the table)");
      }
    }
    above.insert(layer.library);
  }
  for (const auto& [name, target] : build) {
    if (!above.contains(name)) {
      problems.push_back(name + " (" + target.defined_in + ") has no row in the layer table");
    }
  }
  return problems;
}

// The layers a library reaches through its links, itself included.
std::set<std::string> reachable(const std::vector<Layer>& table, const std::string& library) {
  std::set<std::string> seen;
  std::vector<std::string> next = {library};
  while (!next.empty()) {
    std::string name = next.back();
    next.pop_back();
    if (!seen.insert(name).second) continue;
    for (const Layer& layer : table) {
      if (layer.library == name) next.insert(next.end(), layer.links.begin(), layer.links.end());
    }
  }
  return seen;
}

// Every `#include "folder/..."` under src/ that names a layer its file's library does not reach.
std::vector<std::string> includes_out_of_reach(const std::filesystem::path& root,
                                               const std::vector<Layer>& table) {
  static const std::regex kInclude(R"(#include\s+"([\w]+)/[^"]+")");
  std::map<std::string, std::string> library_of;  // "pg" -> tandem_pg
  for (const Layer& layer : table) library_of[layer.folder.substr(4)] = layer.library;
  std::vector<std::string> problems;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root / "src")) {
    std::string extension = entry.path().extension().string();
    if (extension != ".cc" && extension != ".h") continue;
    std::string path = std::filesystem::relative(entry.path(), root).generic_string();
    std::string folder = path.substr(4, path.find('/', 4) - 4);  // "src/pg/x.cc" -> "pg"
    auto library = library_of.find(folder);
    if (library == library_of.end()) continue;  // a folder without a row: reported elsewhere
    std::set<std::string> reach = reachable(table, library->second);
    std::string text = read_file(entry.path());
    for (std::sregex_iterator it(text.begin(), text.end(), kInclude), end; it != end; ++it) {
      auto used = library_of.find((*it)[1]);
      if (used != library_of.end() && !reach.contains(used->second)) {
        problems.push_back(path + " includes " + (*it)[0].str() + ", but " + library->second +
                           " does not link " + used->second);
      }
    }
  }
  return problems;
}

const char kTable[] = R"(# doc
## Layers

Text.

| folder | library | what it knows | links (target_link_libraries) |
|---|---|---|---|
| src/common | tandem_common | a, b | `fmt::fmt` |
| src/pg | tandem_pg | c | common, `PkgConfig::LIBPQ` |
| src/main.cc | tandem | wiring | pg |

## Next
| x | y |
)";

TEST(Layers, ReadsTheTable) {
  std::vector<Layer> table = read_layer_table(kTable);
  ASSERT_EQ(table.size(), 3u);
  EXPECT_EQ(table[0].folder, "src/common");
  EXPECT_EQ(table[0].library, "tandem_common");
  EXPECT_EQ(table[0].links, (std::set<std::string>{"fmt::fmt"}));
  EXPECT_EQ(table[1].links, (std::set<std::string>{"tandem_common", "PkgConfig::LIBPQ"}));
  EXPECT_EQ(table[2].folder, "src/main.cc");
  EXPECT_EQ(table[2].links, (std::set<std::string>{"tandem_pg"}));
}

TEST(Layers, ReadsCMake) {
  std::map<std::string, Target> targets;
  read_cmake(
      "# tandem_x links nothing here\nadd_library(tandem_pg a.cc b.cc)\n"
      "target_link_libraries(tandem_pg PUBLIC tandem_common\n    PRIVATE PkgConfig::LIBPQ)\n"
      "target_link_libraries(elsewhere PUBLIC tandem_pg)\n",
      "src/pg/CMakeLists.txt", targets);
  ASSERT_EQ(targets.size(), 1u);
  EXPECT_EQ(targets["tandem_pg"].defined_in, "src/pg/CMakeLists.txt");
  EXPECT_EQ(targets["tandem_pg"].links,
            (std::set<std::string>{"tandem_common", "PkgConfig::LIBPQ"}));
}

struct DisagreementCase {
  std::string what;
  std::map<std::string, Target> build;
  std::vector<std::string> expected;
};

TEST(Layers, FindsEachDisagreement) {
  const Target common{"src/common/CMakeLists.txt", {"fmt::fmt"}};
  const Target pg{"src/pg/CMakeLists.txt", {"tandem_common", "PkgConfig::LIBPQ"}};
  const Target binary{"CMakeLists.txt", {"tandem_pg"}};
  const std::vector<DisagreementCase> cases = {
      {"agree", {{"tandem_common", common}, {"tandem_pg", pg}, {"tandem", binary}}, {}},
      {"a library without a row",
       {{"tandem_common", common},
        {"tandem_pg", pg},
        {"tandem", binary},
        {"tandem_local", {"src/local/CMakeLists.txt", {"tandem_pg"}}}},
       {"tandem_local (src/local/CMakeLists.txt) has no row in the layer table"}},
      {"a row without a library",
       {{"tandem_common", common}, {"tandem", binary}},
       {"tandem_pg (row src/pg) is not defined in src/pg/CMakeLists.txt"}},
      {"a link the row lacks",
       {{"tandem_common", common},
        {"tandem_pg", {"src/pg/CMakeLists.txt", {"tandem_common", "PkgConfig::LIBPQ", "yaml"}}},
        {"tandem", binary}},
       {"tandem_pg links PkgConfig::LIBPQ, tandem_common, yaml in CMake, but its row says "
        "PkgConfig::LIBPQ, tandem_common"}},
      {"a link CMake lacks",
       {{"tandem_common", {"src/common/CMakeLists.txt", {}}},
        {"tandem_pg", pg},
        {"tandem", binary}},
       {"tandem_common links nothing in CMake, but its row says fmt::fmt"}},
  };
  std::vector<Layer> table = read_layer_table(kTable);
  for (const DisagreementCase& test : cases) {
    EXPECT_EQ(disagreements(table, test.build), test.expected) << test.what;
  }
}

TEST(Layers, RefusesALinkUpward) {
  std::vector<Layer> table = read_layer_table(kTable);
  table[1].links.insert("tandem");
  std::map<std::string, Target> build = {
      {"tandem_common", {"src/common/CMakeLists.txt", {"fmt::fmt"}}},
      {"tandem_pg", {"src/pg/CMakeLists.txt", table[1].links}},
      {"tandem", {"CMakeLists.txt", {"tandem_pg"}}}};
  EXPECT_EQ(disagreements(table, build),
            (std::vector<std::string>{
                "tandem_pg links tandem, which is not a layer below it (a row above it in the "
                "table)"}));
}

TEST(Layers, ArchitectureTableIsTheBuild) {
  std::filesystem::path root(TANDEM_SOURCE_DIR);
  std::vector<Layer> table = read_layer_table(read_file(root / "docs/ARCHITECTURE.md"));
  ASSERT_GE(table.size(), 8u) << "no layer table (with folder, library and links columns) "
                                 "under \"## Layers\" in docs/ARCHITECTURE.md";
  std::map<std::string, Target> build = read_build(root);
  ASSERT_GE(build.size(), 8u) << "found no libraries in the CMake files";
  for (const std::string& problem : disagreements(table, build)) {
    ADD_FAILURE() << "docs/ARCHITECTURE.md, Layers: " << problem;
  }
  for (const auto& entry : std::filesystem::directory_iterator(root / "src")) {
    if (!entry.is_directory()) continue;
    std::string folder = "src/" + entry.path().filename().string();
    bool has_row = false;
    for (const Layer& layer : table) has_row = has_row || layer.folder == folder;
    EXPECT_TRUE(has_row) << folder << " has no row in docs/ARCHITECTURE.md's layer table";
  }
}

TEST(Layers, FilesIncludeOnlyWhatTheirLibraryLinks) {
  std::filesystem::path root(TANDEM_SOURCE_DIR);
  std::vector<Layer> table = read_layer_table(read_file(root / "docs/ARCHITECTURE.md"));
  ASSERT_GE(table.size(), 8u);
  for (const std::string& problem : includes_out_of_reach(root, table)) ADD_FAILURE() << problem;
}

}  // namespace
}  // namespace tandem
