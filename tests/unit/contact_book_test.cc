// ContactBook: majority contact for a primary, proof that a peer has fenced itself, and who
// could still write — from pings alone.
#include "agent/contact_book.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "agent/agent_board.h"

namespace tandem {
namespace {

using std::chrono::milliseconds;

const SteadyTime kStart{std::chrono::seconds(100)};
const milliseconds kProof{1100};
const milliseconds kFresh{200};

SteadyTime at(int ms) { return kStart + milliseconds(ms); }

PingReply standby_reply(std::map<std::string, milliseconds> silence) {
  return {.state = PgState::kStandby, .leader = false, .silence = std::move(silence)};
}

TEST(ContactBook, MajorityContactCountsOnlyAnsweredPings) {
  ContactBook book("node1", {"node1", "node2", "node3"}, kStart);
  // node2 answers at 100 ms, node3 at 300 ms; pings *from* them do not count for node1.
  book.answered("node2", standby_reply({}), at(100));
  book.answered("node3", standby_reply({}), at(300));
  book.served("node2", at(900));
  EXPECT_EQ(book.facts(at(1000), kProof, kFresh).majority_contact_age, milliseconds(700));
  // Five members: a majority needs two answers besides this agent: the second freshest.
  ContactBook five("n1", {"n1", "n2", "n3", "n4", "n5"}, kStart);
  five.answered("n2", standby_reply({}), at(900));
  five.answered("n3", standby_reply({}), at(500));
  five.answered("n4", standby_reply({}), at(100));
  EXPECT_EQ(five.facts(at(1000), kProof, kFresh).majority_contact_age, milliseconds(500));
}

// Issue 16.3: a primary thawed after another took over is still answered by the others; those
// answers, naming the new leader (or coming from it), must not keep it writing.
TEST(ContactBook, OnlyAnswersThatBackThisAgentMakeMajorityContact) {
  struct Case {
    const char* name;
    bool node2_leads;
    std::string node2_follows;
    milliseconds age;  // of node1's majority contact at 1000 ms
  };
  const Case cases[] = {
      {"node2 follows node1", false, "node1", milliseconds(100)},
      {"node2 sees no leader (the store out of reach, or the lease lapsed)", false, "",
       milliseconds(100)},
      {"node2 follows node3", false, "node3", milliseconds(600)},
      {"node2 leads itself", true, "node2", milliseconds(600)},
      {"node2 may write without a view (mid-promotion)", true, "", milliseconds(600)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ContactBook book("node1", {"node1", "node2", "node3"}, kStart);
    PingReply backing = standby_reply({});
    backing.follows = "node1";
    book.answered("node2", backing, at(400));  // backed node1 until then
    PingReply now = standby_reply({});
    now.leader = c.node2_leads;
    now.follows = c.node2_follows;
    book.answered("node2", now, at(900));
    EXPECT_EQ(book.facts(at(1000), kProof, kFresh).majority_contact_age, c.age);
    ASSERT_TRUE(book.majority_contact_at());
    EXPECT_EQ(*book.majority_contact_at(), at(1000) - c.age);
  }
}

TEST(ContactBook, SilenceSinceTheLastPingOrTheStart) {
  ContactBook book("node2", {"node1", "node2", "node3"}, kStart);
  book.served("node1", at(400));
  auto silence = book.silence(at(1000));
  EXPECT_EQ(silence["node1"], milliseconds(600));
  EXPECT_EQ(silence["node3"], milliseconds(1000));  // never pinged: since this agent started
  EXPECT_FALSE(silence.contains("node2"));
}

TEST(ContactBook, ALeaderIsProvenFencedOnlyWhenEnoughMembersHaveNotHeardFromIt) {
  struct Case {
    const char* name;
    int last_ping_from_node1_here;           // ms after start; -1: never
    std::optional<milliseconds> node3_says;  // node3's silence from node1, in its answer
    int node3_answered_at;                   // ms after start
    bool proven;
  };
  const Case cases[] = {
      {"both silent long enough, fresh word from node3", 500, milliseconds(1200), 1900, true},
      {"this agent silent, node3 still hears node1", 500, milliseconds(50), 1900, false},
      {"node3 silent, but this agent still hears node1", 1800, milliseconds(1200), 1900, false},
      {"node3's word is stale", 500, milliseconds(1500), 1500, false},
      {"this agent silent just under the proof", 950, milliseconds(1200), 1900, false},
  };
  for (const Case& c : cases) {
    ContactBook book("node2", {"node1", "node2", "node3"}, kStart);
    if (c.last_ping_from_node1_here >= 0) book.served("node1", at(c.last_ping_from_node1_here));
    std::map<std::string, milliseconds> word;
    if (c.node3_says) word["node1"] = *c.node3_says;
    book.answered("node3", standby_reply(word), at(c.node3_answered_at));
    QuorumFacts facts = book.facts(at(2000), kProof, kFresh);
    bool proven = std::find(facts.proven_fenced.begin(), facts.proven_fenced.end(), "node1") !=
                  facts.proven_fenced.end();
    EXPECT_EQ(proven, c.proven) << c.name;
  }
}

TEST(ContactBook, WhoCouldStillWrite) {
  ContactBook book("node2", {"node1", "node2", "node3", "node4", "node5"}, kStart);
  book.answered("node1", {.state = PgState::kPrimary}, at(1950));  // a primary
  book.answered("node3", standby_reply({}), at(1950));             // read-only, fresh
  book.answered("node4", {.state = PgState::kStopped}, at(1000));  // stale answer
  book.answered("node5", {.state = PgState::kStopped, .leader = true}, at(1950));  // the lease
  for (const char* peer : {"node1", "node3", "node4", "node5"}) book.served(peer, at(1950));
  QuorumFacts facts = book.facts(at(2000), kProof, kFresh);
  EXPECT_EQ(facts.takeover_blockers, (std::vector<std::string>{"node1", "node4", "node5"}));
  EXPECT_TRUE(facts.proven_fenced.empty());
}

// A server still starting may be a primary in crash recovery: it holds takeovers back, unless
// its data is a standby's (a recovery that waits for WAL nobody has starts for ever, and held
// every takeover back: the simulation, seed 2079 on several machines).
TEST(ContactBook, AStartingServerBlocksOnlyWithAPrimarysData) {
  ContactBook book("node2", {"node1", "node2", "node3"}, kStart);
  book.answered("node1", {.state = PgState::kStarting}, at(1950));
  book.answered("node3", {.state = PgState::kStarting, .standby_data = true}, at(1950));
  for (const char* peer : {"node1", "node3"}) book.served(peer, at(1950));
  EXPECT_EQ(book.facts(at(2000), kProof, kFresh).takeover_blockers,
            (std::vector<std::string>{"node1"}));
}

// A cycle stalled past ha.cycle_stall_limit, its postmaster stopped by the keeper: the pings
// answer "stopped, leading nobody" whatever its last snapshot said, until the cycle publishes
// again (fresh multi-host seed 204527433: "primary, leading" for 20 s, and nobody took over).
TEST(ContactBook, AStalledOutAgentAnswersFromItsKeeperNotItsLastSnapshot) {
  AgentBoard board;
  AgentSnapshot last;
  last.node.state = PgState::kPrimary;
  last.node.data_was_primary = true;
  last.view = ClusterView{};
  last.view->leader = LeaderRecord{.name = "node1", .revision = 7};
  board.publish(last, 1000);
  board.set_may_write(true);
  PingReply before = ping_reply(board, "node1");
  EXPECT_EQ(before.state, PgState::kPrimary);
  EXPECT_TRUE(before.leader);
  EXPECT_EQ(before.follows, "node1");

  board.set_stalled_out();
  PingReply stalled = ping_reply(board, "node1");
  EXPECT_EQ(stalled.state, PgState::kStopped);
  EXPECT_FALSE(stalled.leader);
  EXPECT_EQ(stalled.follows, "");
  EXPECT_FALSE(stalled.standby_data);
  ContactBook book("node2", {"node1", "node2", "node3"}, kStart);
  book.answered("node1", stalled, at(100));
  EXPECT_EQ(book.facts(at(150), kProof, kFresh).takeover_blockers,
            std::vector<std::string>{"node3"});  // node1 holds nobody back; node3 never answered

  board.publish(last, 2000);  // the cycle runs again: its own word counts
  EXPECT_EQ(ping_reply(board, "node1").state, PgState::kPrimary);
  EXPECT_TRUE(ping_reply(board, "node1").leader);
}

// Members at run time on several machines: the answers of an agent on another member list do
// not count, the staying peers' words are kept across a change, and a new peer is silent only
// since it joined.
TEST(ContactBook, CountsOnlyAnswersOfAgentsOnItsOwnMemberList) {
  ContactBook book("node1", {"node1", "node2", "node3"}, kStart, 4);
  PingReply old_list = standby_reply({});
  old_list.list = 3;
  book.answered("node2", old_list, at(900));
  EXPECT_FALSE(book.majority_contact_at()) << "an answer of list 3 counted on list 4";
  PingReply same_list = standby_reply({});
  same_list.list = 4;
  book.answered("node2", same_list, at(950));
  ASSERT_TRUE(book.majority_contact_at());
  EXPECT_EQ(*book.majority_contact_at(), at(950));
}

// A removed agent says so (ContactBook::leave) before it tells the others it left: its answers
// back nobody from then on, on any list (fresh multi-host seed 980014699).
TEST(ContactBook, AnAgentThatLeftBacksNobody) {
  ContactBook leaving("node2", {"node1", "node2", "node3"}, kStart, 1, {"node1", "node2", "node3"});
  EXPECT_EQ(leaving.list(), 1u);
  leaving.leave();
  EXPECT_EQ(leaving.list(), kLeftTheCluster);
  for (std::uint64_t list : {0u, 1u, 2u}) {
    ContactBook primary("node1", {"node1", "node2", "node3"}, kStart, list,
                        list > 0 ? std::vector<std::string>{"node1", "node2", "node3"}
                                 : std::vector<std::string>{});
    PingReply backing = standby_reply({});
    backing.list = list;
    primary.answered("node2", backing, at(100));
    ASSERT_TRUE(primary.majority_contact_at()) << "list " << list;
    PingReply left = standby_reply({});
    left.list = leaving.list();
    ContactBook later("node1", {"node1", "node2", "node3"}, kStart, list,
                      list > 0 ? std::vector<std::string>{"node1", "node2", "node3"}
                               : std::vector<std::string>{});
    later.answered("node2", left, at(100));
    EXPECT_FALSE(later.majority_contact_at()) << "list " << list;
  }
}

TEST(ContactBook, AChangeOfMembersKeepsTheStayingPeersWords) {
  ContactBook book("node1", {"node1", "node2", "node3"}, kStart, 0);
  book.answered("node2", standby_reply({}), at(900));
  book.served("node3", at(900));
  book.set_members({"node1", "node2", "node4"}, 1, at(1000));
  EXPECT_EQ(book.list(), 1u);
  EXPECT_TRUE(book.knows("node4"));
  EXPECT_FALSE(book.knows("node3"));
  auto silence = book.silence(at(1500));
  EXPECT_EQ(silence["node4"], milliseconds(500)) << "silent only since it joined";
  EXPECT_FALSE(silence.contains("node3"));
  // Three members still: node2's answer of 900 ms (before the change) is a majority with node1.
  ASSERT_TRUE(book.majority_contact_at());
  EXPECT_EQ(*book.majority_contact_at(), at(900));
  // Four members: two answers besides node1's own; node4's of the old list does not count.
  book.set_members({"node1", "node2", "node3", "node4"}, 2, at(1600));
  PingReply old_list = standby_reply({});
  old_list.list = 1;
  book.answered("node4", old_list, at(1700));
  EXPECT_FALSE(book.majority_contact_at());
  PingReply new_list = standby_reply({});
  new_list.list = 2;
  book.answered("node4", new_list, at(1750));
  ASSERT_TRUE(book.majority_contact_at());
  EXPECT_EQ(*book.majority_contact_at(), at(900));
}

// While a change of the members is under way a taker counts over both lists: a primary still
// on the old list, backed by a majority of it, is never proven fenced by a quorum of the new
// list alone (the two cases a review found: three to four, and three to two).
TEST(ContactBook, WhileTheMembersChangeAProofMustHoldOverBothLists) {
  struct Case {
    const char* what;
    std::string self;
    std::vector<std::string> members, previous;
    std::vector<std::string> witnesses;  // fresh answers on the new list saying p is silent
  };
  const Case cases[] = {
      {"three to four: b and c silent of p, a (backing p) unheard",
       "b",
       {"p", "a", "b", "c"},
       {"p", "a", "b"},
       {"c"}},
      {"three to two: a silent of p, r (backing p) unheard", "a", {"p", "a"}, {"p", "a", "r"}, {}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    ContactBook book(c.self, c.members, kStart, 5, c.previous);
    EXPECT_TRUE(book.changing());
    for (const std::string& witness : c.witnesses) {
      PingReply reply = standby_reply({{"p", milliseconds(2000)}});
      reply.list = 5;
      book.answered(witness, reply, at(1900));
    }
    QuorumFacts facts = book.facts(at(2000), kProof, kFresh);
    EXPECT_EQ(std::count(facts.proven_fenced.begin(), facts.proven_fenced.end(), "p"), 0)
        << "p proven fenced over the new list alone";
    book.end_change();  // every agent moved on (and what they counted lapsed)
    EXPECT_FALSE(book.changing());
    facts = book.facts(at(2000), kProof, kFresh);
    EXPECT_EQ(std::count(facts.proven_fenced.begin(), facts.proven_fenced.end(), "p"), 1)
        << "the same silence is a proof over the new list";
  }
}

TEST(ContactBook, WhileTheMembersChangeAPrimaryNeedsAMajorityOfBothLists) {
  // Three to four: a majority of {p,a,b,c} is three, of {p,a,b} two.
  ContactBook book("p", {"p", "a", "b", "c"}, kStart, 5, {"p", "a", "b"});
  PingReply on_new = standby_reply({});
  on_new.list = 5;
  book.answered("c", on_new, at(500));
  EXPECT_FALSE(book.majority_contact_at()) << "c alone is no majority of either list";
  PingReply on_old = standby_reply({});
  on_old.list = 4;  // a has not taken the new list yet: it backs p on the list before
  book.answered("a", on_old, at(600));
  ASSERT_TRUE(book.majority_contact_at());
  EXPECT_EQ(*book.majority_contact_at(), at(500));
  EXPECT_EQ(book.facts(at(1000), kProof, kFresh).majority_contact_age, milliseconds(500));
  // Once the change is over, an answer of the old list backs nobody.
  book.end_change();
  book.answered("a", on_old, at(900));
  EXPECT_EQ(*book.majority_contact_at(), at(500)) << "a's old-list answer of 900 ms counted";
}

// A removed member still on the list before blocks a takeover until it answers read-only or is
// proven fenced, whatever list it runs: what it says of itself holds.
TEST(ContactBook, WhileTheMembersChangeAMemberOfTheOldListMayBlockATakeover) {
  ContactBook book("a", {"a", "b"}, kStart, 5, {"a", "b", "r"});
  PingReply b_reply = standby_reply({});
  b_reply.list = 5;
  book.answered("b", b_reply, at(950));
  QuorumFacts facts = book.facts(at(1000), kProof, kFresh);
  EXPECT_EQ(facts.takeover_blockers, std::vector<std::string>{"r"});
  PingReply r_reply = standby_reply({});
  r_reply.list = 4;
  book.answered("r", r_reply, at(960));
  EXPECT_TRUE(book.facts(at(1000), kProof, kFresh).takeover_blockers.empty());
}

}  // namespace
}  // namespace tandem
