-- A fixed POST. bench/run sets BENCH_AUTH, BENCH_TYPE and BENCH_BODY in the environment.
dofile(os.getenv("BENCH_DIR") .. "/report.lua")
wrk.method = "POST"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
wrk.headers["Content-Type"] = os.getenv("BENCH_TYPE")
wrk.body = os.getenv("BENCH_BODY")
