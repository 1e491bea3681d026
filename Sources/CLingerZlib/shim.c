// Intentionally empty: the target exists to expose zlib's header and link libz.
#include "CLingerZlib.h"
