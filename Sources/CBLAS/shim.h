// OpenBLAS from Debian's libopenblas-dev; pkg-config "openblas" adds its include dir.
#include <cblas.h>
