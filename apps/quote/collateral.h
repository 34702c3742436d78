/* apps/quote/collateral.h: `ra-quote collateral`, fetching what a quote
 * needs from a PCS/PCCS into dcap-qvl's collateral document. */
#ifndef RA_APPS_QUOTE_COLLATERAL_H
#define RA_APPS_QUOTE_COLLATERAL_H

/* argv[0] is FILE or the first option. Returns the exit status: 0 written,
 * 1 fetch failure, 2 usage error or unreadable input. */
int cmd_collateral(int argc, char **argv);

#endif
