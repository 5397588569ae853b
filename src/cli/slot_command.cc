// tandem slot list | drop NAME | cleanup: the primary's replication slots.
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/status_view.h"
#include "common/units.h"
#include "ops/slot_ops.h"
#include "ops/status.h"
#include "ops/status_json.h"

namespace tandem {

namespace {}  // namespace

void add_slot_command(CLI::App& app, CliState& state) {
  auto* slot = app.add_subcommand("slot", "List, drop or clean up replication slots");
  slot->require_subcommand(1);

  auto* list = slot->add_subcommand("list", "List the primary's slots and what they retain");
  auto json = std::make_shared<bool>(false);
  list->add_flag("--json", *json, "Print JSON for scripts");
  list->callback([&state, json] {
    state.result = with_session(state, [&](Context& context) -> Status {
      ClusterReport report = collect_status(context);
      if (!report.primary) return fail(ErrorCode::kUnavailable, "no primary is running");
      if (*json) {
        fmt::print("{}\n", report_to_json(report, wall_ms_of(context.clock))["slots"].dump(2));
      } else {
        fmt::print("{}", render_slots(report));
      }
      return {};
    });
  });

  auto* drop = slot->add_subcommand("drop", "Drop an inactive slot on the primary");
  auto name = std::make_shared<std::string>();
  drop->add_option("name", *name, "Slot name")->required();
  drop->callback([&state, name] {
    state.result = with_session(state, [&](Context& context) { return drop_slot(context, *name); });
  });

  auto* cleanup = slot->add_subcommand(
      "cleanup", "Drop inactive slots whose WAL is lost or whose standby is gone too long");
  auto gone = std::make_shared<std::string>("1d");
  auto dry_run = std::make_shared<bool>(false);
  cleanup->add_option("--gone-longer-than", *gone, "Inactive for longer than this (e.g. 1h)")
      ->capture_default_str();
  cleanup->add_flag("--dry-run", *dry_run, "Only say which slots would be dropped");
  cleanup->callback([&state, gone, dry_run] {
    state.result = with_session(state, [&](Context& context) -> Status {
      auto threshold = parse_duration(*gone);
      if (!threshold) return fail_with_context(threshold.error(), "--gone-longer-than");
      auto dropped = cleanup_slots(context, *threshold, *dry_run);
      if (!dropped) return std::unexpected(dropped.error());
      if (dropped->empty()) fmt::print("no slot to clean up\n");
      return {};
    });
  });
}

}  // namespace tandem
