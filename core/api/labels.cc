// Label and field selectors: implementation in progress.
#include "core/api/labels.h"
