// tandem: wiring only; everything happens in cli/.
#include "cli/commands.h"

int main(int argc, char** argv) { return tandem::run_cli(argc, argv); }
