"""The status page's stylesheet, inlined into every page.

Colours are CSS variables with a light and a dark set (prefers-color-scheme); the charts
use them through classes, so they follow the scheme too. Status is never told by colour
alone: every status carries an icon and a word. The chart series use hues that stay
apart for the common colour-vision deficiencies (blue, orange, teal, grey, purple).
"""

from __future__ import annotations

__all__ = ["STYLESHEET"]

_RULES = """
:root{color-scheme:light dark;
--bg:#f4f5f7;--panel:#fff;--fg:#1c2230;--muted:#5a6372;--border:#dde1e7;--grid:#e7eaef;
--ok:#1d7a3a;--ok-bg:#e6f4ea;--bad:#b42318;--bad-bg:#fdeceb;--warn:#8a5300;--warn-bg:#fff3d6;
--accent:#2456a6;--on-status:#fff;--row-bad:#fff7f6;
--c-dump:#2b6cb0;--c-branch:#dd8a0b;--c-prune:#23917a;--c-other:#a7b0bd;
--c-fetch:#7a5cc4;--c-restore:#2b6cb0}
@media (prefers-color-scheme:dark){:root{
--bg:#0e1116;--panel:#161b22;--fg:#e6e9ef;--muted:#9ba5b4;--border:#2b323d;--grid:#242b35;
--ok:#5ad27f;--ok-bg:#12291a;--bad:#ff8075;--bad-bg:#3a1714;--warn:#f0b849;--warn-bg:#2f2510;
--accent:#7fb2ff;--on-status:#0e1116;--row-bad:#1f1517;
--c-dump:#63a9ff;--c-branch:#f0a43a;--c-prune:#45c7a0;--c-other:#616b7a;
--c-fetch:#a890ff;--c-restore:#63a9ff}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Ubuntu,"Helvetica Neue",Arial,sans-serif}
.wrap{max-width:1200px;margin:0 auto;padding:0 16px}
header.top{background:var(--panel);border-bottom:1px solid var(--border);padding:14px 0 12px}
h1{font-size:1.3rem;line-height:1.3;margin:0 0 6px;overflow-wrap:anywhere}
h2{font-size:1.05rem;margin:0 0 10px}
h3{font-size:.95rem;margin:0 0 6px}
.meta{display:flex;flex-wrap:wrap;gap:2px 22px;margin:0;color:var(--muted);font-size:.85rem}
.meta div{display:flex;gap:6px;min-width:0}
.meta dt{font-weight:600}.meta dd{margin:0;overflow-wrap:anywhere}
main section{margin:22px 0}
.panel{background:var(--panel);border:1px solid var(--border);border-radius:10px;padding:14px 16px}
.headline{border-left-width:6px}
.headline.ok{border-left-color:var(--ok)}.headline.bad{border-left-color:var(--bad)}
.verdict{display:flex;align-items:center;gap:10px}
.verdict h2{font-size:1.5rem;margin:0}
.headline.ok .verdict{color:var(--ok)}.headline.bad .verdict{color:var(--bad)}
.verdict .icon{width:1.7rem;height:1.7rem}
.checks{list-style:none;margin:10px 0 0;padding:0}
.checks li{display:flex;gap:8px;align-items:baseline;padding:2px 0;min-width:0}
.checks li span{overflow-wrap:anywhere;min-width:0}
.checks li .icon{position:relative;top:.15em}
.checks li.ok .icon{color:var(--ok)}.checks li.bad .icon{color:var(--bad)}
.checks li.bad span{font-weight:600}
.generated,.muted,.note,figcaption,footer{color:var(--muted)}
.generated{font-size:.85rem;margin:10px 0 0}
.icon{width:1em;height:1em;flex:none;vertical-align:-.14em}
.icon .disc{fill:currentColor}
.icon .mark{fill:none;stroke:var(--on-status);stroke-width:1.9;stroke-linecap:round;
stroke-linejoin:round}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,270px),1fr));gap:12px}
.card h3{font-size:1.05rem;margin:0 0 2px;overflow-wrap:anywhere}
.card h3 .badge{margin-left:8px;vertical-align:.1em}
.card p{margin:3px 0;overflow-wrap:anywhere}
.card code{display:inline-block;max-width:100%}
.card .where{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;
font-size:.85rem;color:var(--muted)}
.badge{display:inline-block;font-size:.75rem;font-weight:600;line-height:1.5;padding:0 8px;
border-radius:999px;border:1px solid var(--border);color:var(--muted);white-space:nowrap}
.badge.masked{color:var(--accent);border-color:currentColor}
.pill{display:inline-flex;align-items:center;gap:5px;font-weight:600;font-size:.8rem;
line-height:1.6;padding:0 9px 0 5px;border-radius:999px;white-space:nowrap}
.pill.ok{color:var(--ok);background:var(--ok-bg)}
.pill.bad{color:var(--bad);background:var(--bad-bg)}
.pill.warn{color:var(--warn);background:var(--warn-bg)}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,340px),1fr));gap:12px}
figure{margin:0;min-width:0}
svg.chart{display:block;width:100%;height:auto;overflow:visible}
.chart text{fill:var(--muted);font-size:12px;font-family:inherit}
.chart .unit{font-weight:600}
.chart .grid{stroke:var(--grid);stroke-width:1}
.chart .axis{stroke:var(--muted);stroke-width:1}
.chart .line{fill:none;stroke:var(--c-dump);stroke-width:2;stroke-linejoin:round}
.chart .area{fill:var(--c-dump);opacity:.13}
.chart g.failed rect{opacity:.5}
.chart g:hover rect{opacity:.8}
.s-dump{fill:var(--c-dump);background:var(--c-dump)}
.s-branch{fill:var(--c-branch);background:var(--c-branch)}
.s-prune{fill:var(--c-prune);background:var(--c-prune)}
.s-other{fill:var(--c-other);background:var(--c-other)}
.s-fetch{fill:var(--c-fetch);background:var(--c-fetch)}
.s-restore{fill:var(--c-restore);background:var(--c-restore)}
.fail-mark{fill:none;stroke:var(--bad);stroke-width:1.8;stroke-linecap:round}
.legend{display:flex;flex-wrap:wrap;gap:2px 14px;list-style:none;margin:8px 0 4px;padding:0;
font-size:.8rem;color:var(--muted)}
.legend li{display:flex;align-items:center;gap:6px}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px}
figcaption{font-size:.8rem;line-height:1.45}
.scroll{overflow-x:auto;background:var(--panel);border:1px solid var(--border);border-radius:10px}
table{border-collapse:collapse;width:100%;font-size:.875rem}
th,td{text-align:left;padding:7px 12px;border-bottom:1px solid var(--border);white-space:nowrap;
vertical-align:top}
th{font-size:.72rem;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);
font-weight:600}
tbody tr:last-child td{border-bottom:0}
tr.failed td{background:var(--row-bad)}
.num{text-align:right;font-variant-numeric:tabular-nums}
td.msg{white-space:normal;min-width:16rem;overflow-wrap:anywhere}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;
font-size:.85em}
.empty{color:var(--muted);font-style:italic;margin:0}
.note{font-size:.85rem;margin:-4px 0 8px}
footer{font-size:.8rem;padding-top:4px;padding-bottom:28px}
"""

STYLESHEET = "".join(line.strip() for line in _RULES.strip().splitlines())
