/* bench/report.c: ra-bench's output formats and target checks. */
#include "bench/report.h"

#include "apps/common/json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int bench_results_add(bench_results *rs, const char *scenario, const char *mode, const char *what,
                      const bench_summary *s) {
  if (rs->n == rs->cap) {
    size_t cap = rs->cap ? rs->cap * 2 : 16;
    bench_result *p = realloc(rs->r, cap * sizeof *p);
    if (!p) return -ENOMEM;
    rs->r = p;
    rs->cap = cap;
  }
  rs->r[rs->n++] = (bench_result){.scenario = scenario, .mode = mode, .what = what, .s = *s};
  return 0;
}

void bench_results_free(bench_results *rs) {
  free(rs->r);
  memset(rs, 0, sizeof *rs);
}

const bench_result *bench_results_find(const bench_results *rs, const char *scenario,
                                       const char *mode) {
  for (size_t i = 0; i < rs->n; i++)
    if (!strcmp(rs->r[i].scenario, scenario) && !strcmp(rs->r[i].mode, mode)) return &rs->r[i];
  return NULL;
}

/* ---- targets -------------------------------------------------------------------- */

size_t bench_check_targets(const bench_results *rs, bench_target_check *out, size_t max) {
  size_t k = 0;
  const bench_result *t, *p, *fl;
  if (k < max && (t = bench_results_find(rs, "serial", "tunnel")) &&
      (p = bench_results_find(rs, "serial", "plain")) && p->s.avg_ms > 0) {
    double r = t->s.avg_ms / p->s.avg_ms;
    out[k].scenario = "serial";
    out[k].met = r <= 1.3;
    snprintf(out[k].text, sizeof out[k].text, "serial: tunnel/plain avg %.2fx (target <= 1.30x)", r);
    k++;
  }
  if (k < max && (t = bench_results_find(rs, "concurrent", "tunnel")) &&
      (p = bench_results_find(rs, "concurrent", "plain")) && p->s.avg_ms > 0) {
    double r = t->s.avg_ms / p->s.avg_ms;
    out[k].scenario = "concurrent";
    out[k].met = r <= 1.5;
    snprintf(out[k].text, sizeof out[k].text,
             "concurrent: tunnel/plain avg %.2fx (target <= 1.50x)", r);
    k++;
  }
  if (k < max && (t = bench_results_find(rs, "large", "tunnel")) &&
      (p = bench_results_find(rs, "large", "plain")) &&
      (fl = bench_results_find(rs, "large", "floor"))) {
    double lim = p->s.avg_ms + 1.25 * fl->s.avg_ms; /* tunnel <= plain + 1.25 x floor */
    double extra = fl->s.avg_ms > 0 ? (t->s.avg_ms - p->s.avg_ms) / fl->s.avg_ms : 0;
    out[k].scenario = "large";
    out[k].met = t->s.avg_ms <= lim;
    snprintf(out[k].text, sizeof out[k].text,
             "large: (tunnel - plain) / floor = %.2f (target <= 1.25); avg %.2f - %.2f vs %.2f ms",
             extra, t->s.avg_ms, p->s.avg_ms, fl->s.avg_ms);
    k++;
  }
  if (k < max && (t = bench_results_find(rs, "throughput", "tunnel")) &&
      (p = bench_results_find(rs, "throughput", "plain")) && p->s.rps > 0) {
    double r = t->s.rps / p->s.rps;
    out[k].scenario = "throughput";
    out[k].met = r >= 0.6;
    snprintf(out[k].text, sizeof out[k].text,
             "throughput: tunnel %.0f req/s = %.0f%% of plain %.0f req/s (target >= 60%%)",
             t->s.rps, 100 * r, p->s.rps);
    k++;
  }
  /* issue 18: >= 90 %, against what the cipher alone leaves. If each side
   * spent on a request what plain's rate gives it (1 / rps, as if it were
   * 100 % busy) plus its half of the four passes, the ratio would be
   * 1 / (1 + rps x floor / 2): an upper bound, since the tunnel adds more
   * than the cipher and neither side is quite 100 % busy. The floor's
   * median sample (200 round trips each): a sample the scheduler
   * interrupted measures the neighbour, not the cipher. */
  if (k < max && (t = bench_results_find(rs, "throughput", "tunnel")) &&
      (p = bench_results_find(rs, "throughput", "plain")) && p->s.rps > 0 &&
      (fl = bench_results_find(rs, "throughput", "floor"))) {
    double r = t->s.rps / p->s.rps, side_us = fl->s.p50_ms * 1e3 / 2;
    double bound = 1 / (1 + p->s.rps * side_us / 1e6);
    out[k].scenario = "throughput";
    out[k].met = r >= 0.9;
    snprintf(out[k].text, sizeof out[k].text,
             "throughput: %.0f%% of plain (target >= 90%%, issue 18); the cipher alone bounds it at"
             " %.0f%% here (%.2f us a side; %s)",
             100 * r, 100 * bound, side_us, fl->what);
    k++;
  }
  if (k < max && (t = bench_results_find(rs, "handshake", "tunnel"))) {
    out[k].scenario = "handshake";
    out[k].met = t->s.rps >= 5000;
    snprintf(out[k].text, sizeof out[k].text,
             "handshake: %.0f new verified tunnels/s (target >= 5000/s, issue 18)", t->s.rps);
    k++;
  }
  return k;
}

/* ---- table / CSV / JSON -------------------------------------------------------------- */

static double ratio(double a, double b) { return b > 0 ? a / b : 0; }

int bench_print_table(FILE *f, const bench_results *rs) {
  fprintf(f, "%-11s %-7s %6s %10s %10s %10s %10s %10s %11s\n", "scenario", "mode", "n", "avg_ms",
          "p50_ms", "p90_ms", "p99_ms", "max_ms", "rps");
  for (size_t i = 0; i < rs->n; i++) {
    const bench_result *r = &rs->r[i];
    fprintf(f, "%-11s %-7s %6zu %10.3f %10.3f %10.3f %10.3f %10.3f %11.1f\n", r->scenario,
            r->mode, r->s.n, r->s.avg_ms, r->s.p50_ms, r->s.p90_ms, r->s.p99_ms, r->s.max_ms,
            r->s.rps);
    /* after the second of a tunnel/plain pair: the ratio row */
    bool last_of_scenario = i + 1 == rs->n || strcmp(rs->r[i + 1].scenario, r->scenario);
    if (!last_of_scenario) continue;
    const bench_result *t = bench_results_find(rs, r->scenario, "tunnel");
    const bench_result *p = bench_results_find(rs, r->scenario, "plain");
    if (!t || !p) continue;
    fprintf(f, "%-11s %-7s %6s %9.2fx %9.2fx %9.2fx %9.2fx %9.2fx %10.2fx\n", r->scenario, "ratio",
            "", ratio(t->s.avg_ms, p->s.avg_ms), ratio(t->s.p50_ms, p->s.p50_ms),
            ratio(t->s.p90_ms, p->s.p90_ms), ratio(t->s.p99_ms, p->s.p99_ms),
            ratio(t->s.max_ms, p->s.max_ms), ratio(t->s.rps, p->s.rps));
  }
  bench_target_check chk[8];
  size_t n = bench_check_targets(rs, chk, 8);
  int missed = 0;
  if (n) fprintf(f, "\ntargets (issue 6):\n");
  for (size_t i = 0; i < n; i++) {
    fprintf(f, "  [%s] %s\n", chk[i].met ? " met " : "MISSED", chk[i].text);
    missed += !chk[i].met;
  }
  return missed;
}

void bench_print_csv(FILE *f, const bench_results *rs) {
  fprintf(f, "scenario,mode,n,avg_ms,p50_ms,p90_ms,p99_ms,max_ms,rps\n");
  for (size_t i = 0; i < rs->n; i++) {
    const bench_result *r = &rs->r[i];
    fprintf(f, "%s,%s,%zu,%.4f,%.4f,%.4f,%.4f,%.4f,%.2f\n", r->scenario, r->mode, r->s.n,
            r->s.avg_ms, r->s.p50_ms, r->s.p90_ms, r->s.p99_ms, r->s.max_ms, r->s.rps);
  }
}

void bench_print_json(FILE *f, const bench_results *rs) {
  json_out j;
  json_init(&j, f, JSON_SPACED | JSON_ITEMS_ON_LINES);
  json_begin(&j, NULL, '[');
  for (size_t i = 0; i < rs->n; i++) {
    const bench_result *r = &rs->r[i];
    json_begin(&j, NULL, '{');
    json_string(&j, "scenario", r->scenario);
    json_string(&j, "mode", r->mode);
    json_uint(&j, "n", (unsigned long)r->s.n);
    json_number(&j, "avg_ms", "%.6f", r->s.avg_ms);
    json_number(&j, "p50_ms", "%.6f", r->s.p50_ms);
    json_number(&j, "p90_ms", "%.6f", r->s.p90_ms);
    json_number(&j, "p99_ms", "%.6f", r->s.p99_ms);
    json_number(&j, "max_ms", "%.6f", r->s.max_ms);
    json_number(&j, "rps", "%.2f", r->s.rps);
    json_end(&j);
  }
  json_end(&j);
  fputc('\n', f);
}

/* ---- SVG ------------------------------------------------------------------------- */

static const char *mode_color(const char *mode) {
  if (!strcmp(mode, "plain")) return "#4c78a8";
  if (!strcmp(mode, "tunnel")) return "#f58518";
  return "#54a24b"; /* floor */
}

/* A "nice" axis maximum and step (1, 2, 2.5, 5 x 10^k) for about 5 ticks. */
static void nice_axis(double vmax, double *top, double *step) {
  if (vmax <= 0) vmax = 1;
  double raw = vmax / 5;
  double mag = pow(10, floor(log10(raw)));
  double steps[] = {1, 2, 2.5, 5, 10};
  double st = 10 * mag;
  for (size_t i = 0; i < sizeof steps / sizeof *steps; i++)
    if (steps[i] * mag >= raw) {
      st = steps[i] * mag;
      break;
    }
  *step = st;
  *top = ceil(vmax / st) * st;
  if (*top < vmax * 1.08) *top += st; /* room for the value labels */
}

static void fmt_ms(char *buf, size_t n, double v) {
  if (v >= 100) snprintf(buf, n, "%.0f", v);
  else if (v >= 10) snprintf(buf, n, "%.1f", v);
  else if (v >= 1) snprintf(buf, n, "%.2f", v);
  else snprintf(buf, n, "%.3f", v);
}

static void fmt_rps(char *buf, size_t n, double v) {
  if (v >= 10000) snprintf(buf, n, "%.0fk", v / 1000);
  else if (v >= 1000) snprintf(buf, n, "%.1fk", v / 1000);
  else snprintf(buf, n, "%.0f", v);
}

/* subtitle and labels are free text: escape what XML reserves */
static void xml_text(FILE *f, const char *s) {
  for (; *s; s++) {
    switch (*s) {
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '&': fputs("&amp;", f); break;
    case '"': fputs("&quot;", f); break;
    default:
      if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
  }
}

int bench_write_svg(const char *path, const bench_results *rs, const char *subtitle) {
  /* scenarios in order of first appearance */
  const char *scen[16];
  size_t ns = 0;
  for (size_t i = 0; i < rs->n && ns < 16; i++) {
    bool seen = false;
    for (size_t j = 0; j < ns; j++) seen |= !strcmp(scen[j], rs->r[i].scenario);
    if (!seen) scen[ns++] = rs->r[i].scenario;
  }
  FILE *f = fopen(path, "w");
  if (!f) return -errno;

  const int pw = 440, ph = 330, cols = ns < 3 ? (int)(ns ? ns : 1) : 3;
  const int rows = (int)((ns + (size_t)cols - 1) / (size_t)cols);
  const int top = 96, W = cols * pw + 20, H = top + rows * ph + 20;
  fprintf(f,
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
          "viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
          "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
          W, H, W, H);
  fprintf(f,
          "<text x=\"%d\" y=\"30\" font-size=\"20\" font-weight=\"bold\" text-anchor=\"middle\">"
          "ra-bench: attested tunnel vs plain HTTP/1.1 (latency, lower is better)</text>\n",
          W / 2);
  if (subtitle) {
    fprintf(f, "<text x=\"%d\" y=\"52\" font-size=\"12\" fill=\"#555\" text-anchor=\"middle\">", W / 2);
    xml_text(f, subtitle);
    fprintf(f, "</text>\n");
  }
  /* legend */
  const char *legend[] = {"plain", "tunnel", "floor"};
  const char *legend_txt[] = {"plain HTTP/1.1", "RA tunnel", "crypto floor (4 x secretbox 1 MiB)"};
  int lx = W / 2 - 250;
  for (int i = 0; i < 3; i++) {
    fprintf(f, "<rect x=\"%d\" y=\"64\" width=\"14\" height=\"14\" fill=\"%s\"/>"
               "<text x=\"%d\" y=\"76\" font-size=\"13\">%s</text>\n",
            lx, mode_color(legend[i]), lx + 19, legend_txt[i]);
    lx += i == 0 ? 130 : 115;
  }
  fprintf(f, "<line x1=\"%d\" y1=\"71\" x2=\"%d\" y2=\"71\" stroke=\"#d62728\" stroke-width=\"2\" "
             "stroke-dasharray=\"6,4\"/><text x=\"%d\" y=\"76\" font-size=\"13\">avg target</text>\n",
          lx + 160, lx + 190, lx + 195);

  const char *figs[] = {"avg", "p50", "p90", "p99"};
  for (size_t si = 0; si < ns; si++) {
    const char *sc = scen[si];
    int ox = 10 + (int)(si % (size_t)cols) * pw, oy = top + (int)(si / (size_t)cols) * ph;
    int ax = ox + 62, ay = oy + 40, aw = pw - 80, ah = ph - 120; /* plot area */
    const bench_result *m[3] = {bench_results_find(rs, sc, "plain"),
                                bench_results_find(rs, sc, "tunnel"),
                                bench_results_find(rs, sc, "floor")};
    const bench_result *any = m[0] ? m[0] : m[1] ? m[1] : m[2];
    double vmax = 0, target = -1;
    for (int k = 0; k < 3; k++) {
      if (!m[k]) continue;
      double v[4] = {m[k]->s.avg_ms, m[k]->s.p50_ms, m[k]->s.p90_ms, m[k]->s.p99_ms};
      for (int j = 0; j < 4; j++) vmax = v[j] > vmax ? v[j] : vmax;
    }
    if (m[0] && !strcmp(sc, "serial")) target = 1.3 * m[0]->s.avg_ms;
    if (m[0] && !strcmp(sc, "concurrent")) target = 1.5 * m[0]->s.avg_ms;
    if (m[0] && m[2] && !strcmp(sc, "large")) target = m[0]->s.avg_ms + 1.25 * m[2]->s.avg_ms;
    if (target > vmax) vmax = target;
    double ymax, step;
    nice_axis(vmax, &ymax, &step);

    fprintf(f, "<g>\n<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#ddd\"/>\n",
            ox, oy, pw - 10, ph - 10);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"15\" font-weight=\"bold\" text-anchor=\"middle\">%s</text>\n",
            ox + pw / 2, oy + 18, sc);
    if (any && any->what) {
      fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#555\" text-anchor=\"middle\">",
              ox + pw / 2, oy + 33);
      xml_text(f, any->what);
      fprintf(f, "</text>\n");
    }
    /* y axis, grid and ticks */
    for (double y = 0; y <= ymax + step / 2; y += step) {
      int py = ay + ah - (int)lround(y / ymax * ah);
      char lab[32];
      fmt_ms(lab, sizeof lab, y);
      fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#eee\"/>"
                 "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">%s</text>\n",
              ax, py, ax + aw, py, ax - 5, py + 4, lab);
    }
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>"
               "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n",
            ax, ay, ax, ay + ah, ax, ay + ah, ax + aw, ay + ah);
    fprintf(f, "<text transform=\"translate(%d,%d) rotate(-90)\" font-size=\"12\" "
               "text-anchor=\"middle\">latency (ms)</text>\n",
            ox + 16, ay + ah / 2);
    /* bars */
    int nb = 0;
    for (int k = 0; k < 3; k++) nb += m[k] != NULL;
    int gw = aw / 4, bw = nb ? (gw - 12) / nb : 0;
    if (bw > 34) bw = 34;
    for (int j = 0; j < 4; j++) {
      int gx = ax + j * gw + (gw - bw * nb) / 2, b = 0;
      for (int k = 0; k < 3; k++) {
        if (!m[k]) continue;
        double v[4] = {m[k]->s.avg_ms, m[k]->s.p50_ms, m[k]->s.p90_ms, m[k]->s.p99_ms};
        int h = (int)lround(v[j] / ymax * ah);
        int x = gx + b * bw;
        char lab[32];
        fmt_ms(lab, sizeof lab, v[j]);
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"><title>%s %s %s: %s ms</title></rect>\n",
                x, ay + ah - h, bw - 2, h, mode_color(m[k]->mode), sc, m[k]->mode, figs[j], lab);
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"8\" text-anchor=\"middle\">%s</text>\n",
                x + (bw - 2) / 2, ay + ah - h - 3, lab);
        b++;
      }
      fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">%s</text>\n",
              ax + j * gw + gw / 2, ay + ah + 16, figs[j]);
    }
    if (target > 0) {
      int py = ay + ah - (int)lround(target / ymax * ah);
      fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#d62728\" stroke-width=\"2\" "
                 "stroke-dasharray=\"6,4\"/>\n",
              ax, py, ax + gw, py);
    }
    /* footer: ratio and rates */
    char line[256] = "";
    const bench_result *t = m[1], *p = m[0];
    if (t && p && p->s.avg_ms > 0) {
      char tr[32], pr[32];
      fmt_rps(tr, sizeof tr, t->s.rps);
      fmt_rps(pr, sizeof pr, p->s.rps);
      snprintf(line, sizeof line, "tunnel/plain avg %.2fx  |  req/s: plain %s, tunnel %s",
               t->s.avg_ms / p->s.avg_ms, pr, tr);
    } else if (t || p) {
      char r1[32];
      fmt_rps(r1, sizeof r1, (t ? t : p)->s.rps);
      snprintf(line, sizeof line, "%s: %s per second", (t ? t : p)->mode, r1);
    }
    if (!strcmp(sc, "handshake") && t) {
      char tr[32];
      fmt_rps(tr, sizeof tr, t->s.rps);
      snprintf(line, sizeof line, "%s new verified tunnels/s (target >= 1000)", tr);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">", ox + pw / 2,
            ay + ah + 40);
    xml_text(f, line);
    fprintf(f, "</text>\n</g>\n");
  }
  /* the targets, in the first free panel (or below the grid) */
  bench_target_check chk[8];
  size_t nc = bench_check_targets(rs, chk, 8);
  if (nc) {
    int ox = 10 + (int)(ns % (size_t)cols) * pw, oy = top + (int)(ns / (size_t)cols) * ph;
    if (ns % (size_t)cols != 0) {
      fprintf(f, "<g>\n<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#ddd\"/>\n",
              ox, oy, pw - 10, ph - 10);
      fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"15\" font-weight=\"bold\" text-anchor=\"middle\">"
                 "targets (issue 6)</text>\n", ox + pw / 2, oy + 18);
      int y = oy + 48;
      for (size_t i = 0; i < nc; i++) {
        /* split "scenario: rest" over two lines to fit the panel */
        const char *colon = strchr(chk[i].text, ':');
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"13\" font-weight=\"bold\" fill=\"%s\">%s %.*s</text>\n",
                ox + 14, y, chk[i].met ? "#2a7d2a" : "#c62828", chk[i].met ? "met" : "MISSED",
                colon ? (int)(colon - chk[i].text) : 0, chk[i].text);
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10.5\">", ox + 14, y + 15);
        xml_text(f, colon ? colon + 2 : chk[i].text);
        fprintf(f, "</text>\n");
        y += 46;
      }
      fprintf(f, "</g>\n");
    }
  }
  fprintf(f, "</svg>\n");
  int rc = ferror(f) ? -EIO : 0;
  if (fclose(f) && !rc) rc = -errno;
  return rc;
}
