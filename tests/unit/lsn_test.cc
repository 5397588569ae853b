#include "core/lsn.h"

#include <gtest/gtest.h>

namespace tandem {
namespace {

TEST(Lsn, ParsesWhatPostgresPrints) {
  struct Case {
    const char* text;
    std::uint64_t value;
  };
  for (const Case& c :
       {Case{"0/0", 0}, Case{"0/3000148", 0x3000148}, Case{"16/B374D848", 0x16B374D848ULL},
        Case{"FFFFFFFF/FFFFFFFF", 0xFFFFFFFFFFFFFFFFULL}, Case{"a/b", 0xA0000000BULL}}) {
    auto lsn = Lsn::parse(c.text);
    ASSERT_TRUE(lsn) << c.text;
    EXPECT_EQ(lsn->value(), c.value) << c.text;
  }
}

TEST(Lsn, RefusesMalformed) {
  for (const char* text :
       {"", "/", "0/", "/1", "12", "0/123456789", "G/1", "0/1/2", " 0/1", "0/1 ", "-1/0"}) {
    EXPECT_FALSE(Lsn::parse(text)) << text;
  }
}

TEST(Lsn, FormatsLikePostgres) {
  EXPECT_EQ(Lsn(0x3000148).str(), "0/3000148");
  EXPECT_EQ(Lsn(0x16B374D848ULL).str(), "16/B374D848");
  EXPECT_EQ(Lsn(0).str(), "0/0");
  EXPECT_EQ(Lsn::parse("a/b")->str(), "A/B");
}

TEST(Lsn, ArithmeticAndOrder) {
  Lsn early = *Lsn::parse("0/3000000");
  Lsn late = *Lsn::parse("1/0");
  EXPECT_LT(early, late);
  EXPECT_EQ(late.bytes_after(early), 0x100000000LL - 0x3000000LL);
  EXPECT_EQ(early.bytes_after(late), -(0x100000000LL - 0x3000000LL));
  EXPECT_EQ(late.bytes_after(late), 0);
}

}  // namespace
}  // namespace tandem
