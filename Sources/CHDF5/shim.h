#include <hdf5.h>

// HDF5's type and flag "constants" are macros that call H5open(); Swift cannot import them.
static inline hid_t shim_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t shim_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t shim_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t shim_c_s1(void) { return H5T_C_S1; }
static inline unsigned shim_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline hid_t shim_p_file_access(void) { return H5P_FILE_ACCESS; }
static inline size_t shim_variable(void) { return H5T_VARIABLE; }
// Plain (hid_t)0 macros: wrapped so Swift sees them as hid_t, not Int32.
static inline hid_t shim_p_default(void) { return H5P_DEFAULT; }
static inline hid_t shim_s_all(void) { return H5S_ALL; }

// Silences the automatic error-stack printing (per thread in thread-safe builds), so a corrupt
// file gives the caller's own one-line error instead of an HDF5 trace on stderr.
static inline herr_t shim_silence_errors(void) { return H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
