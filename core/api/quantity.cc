// Quantities: implementation in progress.
#include "core/api/quantity.h"
