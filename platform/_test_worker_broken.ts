// A worker for worker_test.ts whose module fails while loading, before it calls parentLink().
throw new Error("broken on purpose");
