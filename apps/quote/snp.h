/* apps/quote/snp.h: ra-quote's SEV-SNP side (show and verify of AMD
 * SEV-SNP attestation reports). */
#ifndef RA_APPS_QUOTE_SNP_H
#define RA_APPS_QUOTE_SNP_H

#include <stdbool.h>

/* `ra-quote show|verify|bench ARGS` (bench: verify's options and -n N) when ARGS is about an SNP report: the file
 * is one (1184 bytes, version 2..5, binary/hex/base64; standard input
 * "-" is not looked at: it can be read once), or an SNP-only
 * option is given (--snp, --vcek, --ask, --ark, --trust-snp-sim, --snp-*).
 * Returns the exit status (0 valid/shown, 1 invalid, 2 usage or
 * unreadable input), or -1 when ARGS is not about SNP (the caller goes on
 * with Intel quotes). argv[0] is the first argument after the subcommand. */
enum { RA_QUOTE_SNP_SHOW, RA_QUOTE_SNP_VERIFY, RA_QUOTE_SNP_BENCH };
int ra_quote_snp(int argc, char **argv, int mode);

/* `ra-quote sim --snp --dir DIR --report-data HEX --out FILE [--debug]
 * [--vmpl N] [--measurement HEX] [--host-data HEX]`: a report of the
 * simulated SEV-SNP TEE (snp_sim.h); its VCEK and chain are in DIR.
 * Returns the exit status, or -1 without --snp (an Intel sim quote). */
int ra_quote_snp_sim(int argc, char **argv);

#endif
