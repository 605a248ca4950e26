// The library-internal name for ferry's public Status header.
#pragma once
#include "ferry/status.h"
