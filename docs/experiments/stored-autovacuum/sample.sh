#!/usr/bin/env bash
# Samples background I/O activity while bench run 2 measures.
log=/work/stored-2.log out=/work/stored-2-samples.txt
until grep -q "rate-200:" "$log"; do sleep 2; done
echo "start $(date -u +%T)" > "$out"
while ! grep -q "results in" "$log"; do
  t=$(date -u +%T)
  av=$(runuser -u postgres -- psql -p 5432 -d postgres -Atqc "select string_agg(datname||':'||left(query,60), ' | ') from pg_stat_activity where backend_type='autovacuum worker'" 2>/dev/null)
  ck=$(runuser -u postgres -- psql -p 5432 -d postgres -Atqc "select buffers_checkpoint||' '||buffers_backend||' '||checkpoints_timed||' '||checkpoints_req from pg_stat_bgwriter" 2>/dev/null)
  dirty=$(awk '/^nr_dirty |^nr_writeback /{printf "%s=%s ", $1, $2}' /proc/vmstat)
  disk=$(awk '$3=="vda"{print "rd_sect="$6" wr_sect="$10" io_ms="$13}' /proc/diskstats)
  echo "$t phase=$(grep -o '==> [a-z0-9-]*:' "$log" | tail -1) ckpt[$ck] $dirty $disk av[$av]" >> "$out"
  sleep 5
done
echo "end $(date -u +%T)" >> "$out"
