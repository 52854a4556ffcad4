/*
 * eppfront.cc - dlsched-epp's native ext_proc front end: Envoy's
 * ExternalProcessor service (the Endpoint Picker Protocol of the Gateway
 * API Inference Extension, docs/proposals/004-endpoint-picker-protocol) in
 * C++ on gRPC's synchronous server, calling the Python picker only where a
 * decision or an outcome is made: once to pick (on the stream's thread:
 * the answer waits for it), and for the outcome, once at the response
 * headers, once at the first response body chunk, once when the stream
 * ends. The outcome calls are queued, in order, to one dispatcher thread,
 * so a response never waits for the picker (nor for Python's GIL); only
 * the pick is on a request's path. The messages themselves (headers,
 * buffered and echoed bodies, metadata) never reach Python.
 *
 * The protocol is the one dlsched/epp/server.py's StreamState implements
 * (its docstring cites the sources); the two are run through the same
 * tests (bindings/python/tests/test_epp_protocol.py, both front ends).
 *
 * C ABI (ctypes): eppf_start / eppf_port / eppf_drain / eppf_stop. The
 * pick callback is called on gRPC's threads; the outcome callbacks (resp,
 * first, finish) on the dispatcher thread, in the order their events
 * happened, each stream's after its pick has returned. No callback runs
 * after eppf_stop has returned (it delivers the queued outcomes first).
 *
 * eppf_start with pick NULL serves the same protocol with no picker at
 * all: round-robin in C over the comma-separated endpoints that user
 * points to, no outcome calls. make bench-epp measures that as the floor
 * of the ext_proc path (what a picker that decides in no time would add).
 */
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <time.h>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "envoy/service/ext_proc/v3/external_processor.grpc.pb.h"

namespace ep = envoy::service::ext_proc::v3;
namespace core = envoy::config::core::v3;

extern "C" {
/* pick: headers "key\0value\0..." (hlen bytes), the request body when
   has_body, the subset hint "a\0b\0..." when has_subset. Returns the
   status: 200 with "ip:port[,ip:port...]" in out, else the refusal's
   status with its reason in out (NUL-terminated, at most outcap bytes). */
typedef int (*eppf_pick_cb)(void *user, uint64_t stream, const char *headers, size_t hlen,
                            const char *body, size_t blen, int has_body, const char *subset,
                            size_t slen, int has_subset, char *out, size_t outcap);
/* the response headers of a picked stream: :status (0 if absent or not a
   number) and the endpoint that served (slen 0: not reported) */
typedef void (*eppf_resp_cb)(void *user, uint64_t stream, int status, const char *served,
                             size_t slen);
/* the first non-empty response body chunk arrived at t (CLOCK_MONOTONIC, s) */
typedef void (*eppf_first_cb)(void *user, uint64_t stream, double t);
/* the stream of a picked request ended: complete = the response reached
   its end (t_end, 0 if it never did), the last tail_bytes of its body */
typedef void (*eppf_finish_cb)(void *user, uint64_t stream, int complete, double t_end,
                               const char *tail, size_t tlen);
}

namespace {

const char *kDestHeader = "x-gateway-destination-endpoint";
const char *kDestNamespace = "envoy.lb";
const char *kSubsetNamespace = "envoy.lb.subset_hint";
const char *kSubsetKey = "x-gateway-destination-endpoint-subset";
const char *kServedKey = "x-gateway-destination-endpoint-served";
const size_t kBodyByteLimit = 62000;           /* GIE's chunking.go BodyByteLimit */
const size_t kMaxRequestBody = 10 * 1024 * 1024; /* GIE's maxRequestBodySize */

double mono_now()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* the fixed round-robin of eppf_start with no pick callback */
struct Fixed {
    std::vector<std::string> endpoints;
    std::atomic<uint64_t> next{0};
};

struct Callbacks {
    Fixed *fixed; /* non-NULL: no picker (pick and the rest unused) */
    eppf_pick_cb pick;
    eppf_resp_cb resp;
    eppf_first_cb first;
    eppf_finish_cb finish;
    void *user;
    size_t tail_bytes;
};

/* the outcome callbacks, queued to one thread: FIFO, so each stream's
   response headers, first byte and end arrive in that order */
class Dispatcher {
  public:
    explicit Dispatcher(const Callbacks &cb) : cb_(cb), th_([this] { run(); }) {}
    ~Dispatcher()
    {
        {
            std::lock_guard<std::mutex> g(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        th_.join(); /* delivers what is queued first */
    }

    const Callbacks &cb() const { return cb_; }

    void resp(uint64_t id, int status, const std::string &served)
    {
        push(Event{Event::kResp, id, status, 0.0, served});
    }
    void first(uint64_t id, double t) { push(Event{Event::kFirst, id, 0, t, std::string()}); }
    void finish(uint64_t id, int complete, double t_end, const std::string &tail)
    {
        push(Event{Event::kFinish, id, complete, t_end, tail});
    }

    /* wait until every event queued so far has been delivered; false on timeout */
    bool drain(int timeout_ms)
    {
        std::unique_lock<std::mutex> g(mu_);
        uint64_t want = pushed_;
        return idle_.wait_for(g, std::chrono::milliseconds(timeout_ms),
                              [&] { return done_ >= want; });
    }

  private:
    struct Event {
        enum Kind { kResp, kFirst, kFinish } kind;
        uint64_t id;
        int n; /* status, or complete */
        double t;
        std::string s; /* served endpoint, or the body's tail */
    };

    void push(Event &&e)
    {
        {
            std::lock_guard<std::mutex> g(mu_);
            q_.push_back(std::move(e));
            pushed_++;
        }
        cv_.notify_one();
    }

    void run()
    {
        std::unique_lock<std::mutex> g(mu_);
        for (;;) {
            cv_.wait(g, [this] { return stop_ || !q_.empty(); });
            if (q_.empty())
                return; /* stop_, nothing left */
            Event e = std::move(q_.front());
            q_.pop_front();
            g.unlock();
            switch (e.kind) {
            case Event::kResp:
                cb_.resp(cb_.user, e.id, e.n, e.s.data(), e.s.size());
                break;
            case Event::kFirst:
                cb_.first(cb_.user, e.id, e.t);
                break;
            case Event::kFinish:
                cb_.finish(cb_.user, e.id, e.n, e.t, e.s.data(), e.s.size());
                break;
            }
            g.lock();
            done_++;
            idle_.notify_all();
        }
    }

    Callbacks cb_;
    std::mutex mu_;
    std::condition_variable cv_, idle_;
    std::deque<Event> q_;
    uint64_t pushed_ = 0, done_ = 0;
    bool stop_ = false;
    std::thread th_; /* last: starts once the rest is built */
};

std::string lower(const std::string &s)
{
    std::string r = s;
    for (char &c : r)
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
    return r;
}

const std::string &header_value(const core::HeaderValue &h)
{
    return h.raw_value().empty() ? h.value() : h.raw_value();
}

ep::ProcessingResponse immediate(int status, const std::string &details)
{
    ep::ProcessingResponse r;
    auto *ir = r.mutable_immediate_response();
    ir->mutable_status()->set_code((envoy::type::v3::StatusCode)status);
    ir->set_body(details);
    ir->set_details(details);
    return r;
}

ep::ProcessingResponse destination(const std::string &value)
{
    ep::ProcessingResponse r;
    auto *common = r.mutable_request_headers()->mutable_response();
    common->set_clear_route_cache(true);
    auto *opt = common->mutable_header_mutation()->add_set_headers();
    opt->mutable_header()->set_key(kDestHeader);
    opt->mutable_header()->set_raw_value(value);
    opt->set_append_action(core::HeaderValueOption::OVERWRITE_IF_EXISTS_OR_ADD);
    auto &ns = (*r.mutable_dynamic_metadata()->mutable_fields())[kDestNamespace];
    (*ns.mutable_struct_value()->mutable_fields())[kDestHeader].set_string_value(value);
    return r;
}

/* StreamedBodyResponse chunks of at most kBodyByteLimit bytes (one,
   possibly empty, for an empty body); end_of_stream on the last if eos */
template <class W>
bool write_body(W *rw, const std::string &body, bool eos, bool response)
{
    size_t n = body.size();
    size_t i = 0;
    do {
        size_t len = n - i < kBodyByteLimit ? n - i : kBodyByteLimit;
        bool last = i + len >= n;
        ep::ProcessingResponse r;
        ep::BodyResponse *br = response ? r.mutable_response_body() : r.mutable_request_body();
        auto *sr = br->mutable_response()->mutable_body_mutation()->mutable_streamed_response();
        sr->set_body(body.substr(i, len));
        sr->set_end_of_stream(eos && last);
        if (!rw->Write(r))
            return false;
        i += len;
    } while (i < n);
    return true;
}

class Stream {
  public:
    Stream(Dispatcher &d, uint64_t id) : d_(d), cb_(d.cb()), id_(id) {}

    /* one ProcessingRequest: writes its answers; false when the stream is
       over (an ImmediateResponse went out, or a write failed) */
    template <class W> bool on(const ep::ProcessingRequest &req, W *rw)
    {
        switch (req.request_case()) {
        case ep::ProcessingRequest::kRequestHeaders: {
            const auto &rh = req.request_headers();
            headers_.clear();
            for (const auto &h : rh.headers().headers()) {
                headers_ += lower(h.key());
                headers_.push_back('\0');
                headers_ += header_value(h);
                headers_.push_back('\0');
            }
            read_subset(req);
            if (rh.end_of_stream())
                return pick_and_answer(rw, nullptr, false);
            pending_ = true;
            return true;
        }
        case ep::ProcessingRequest::kRequestBody: {
            const auto &rb = req.request_body();
            if (!pending_)
                return write_body(rw, rb.body(), rb.end_of_stream(), false);
            if (body_.size() + rb.body().size() > kMaxRequestBody) {
                rw->Write(immediate(413, "request body over " + std::to_string(kMaxRequestBody) +
                                             " bytes"));
                return false;
            }
            body_ += rb.body();
            if (!rb.end_of_stream())
                return true;
            pending_ = false;
            return pick_and_answer(rw, &body_, true);
        }
        case ep::ProcessingRequest::kRequestTrailers: {
            if (pending_) { /* the body ended with trailers: pick now */
                pending_ = false;
                if (!pick_and_answer(rw, &body_, false))
                    return false;
            }
            ep::ProcessingResponse r;
            r.mutable_request_trailers();
            return rw->Write(r);
        }
        case ep::ProcessingRequest::kResponseHeaders: {
            const auto &rh = req.response_headers();
            if (picked_) {
                int status = 0;
                std::string served = served_metadata(req), served_h;
                for (const auto &h : rh.headers().headers()) {
                    std::string k = lower(h.key());
                    if (k == ":status") {
                        const std::string &v = header_value(h);
                        char *end = nullptr;
                        long x = strtol(v.c_str(), &end, 10);
                        status = (end && *end == '\0' && !v.empty() && x > 0 && x < 1000) ? (int)x : 0;
                    } else if (k == kServedKey) {
                        served_h = header_value(h);
                    }
                }
                if (served.empty())
                    served = first_of(served_h);
                d_.resp(id_, status, served);
                if (rh.end_of_stream())
                    end_response();
            }
            ep::ProcessingResponse r;
            r.mutable_response_headers();
            return rw->Write(r);
        }
        case ep::ProcessingRequest::kResponseBody: {
            const auto &rb = req.response_body();
            if (picked_) {
                const std::string &b = rb.body();
                if (!b.empty()) {
                    if (!seen_first_) {
                        seen_first_ = true;
                        d_.first(id_, mono_now());
                    }
                    tail_ += b;
                    if (tail_.size() > cb_.tail_bytes)
                        tail_.erase(0, tail_.size() - cb_.tail_bytes);
                }
                if (rb.end_of_stream())
                    end_response();
            }
            return write_body(rw, rb.body(), rb.end_of_stream(), true);
        }
        case ep::ProcessingRequest::kResponseTrailers: {
            if (picked_)
                end_response();
            ep::ProcessingResponse r;
            r.mutable_response_trailers();
            return rw->Write(r);
        }
        default:
            return true;
        }
    }

    /* the stream ended, however it ended */
    void close()
    {
        if (picked_)
            d_.finish(id_, complete_, t_end_, tail_);
        picked_ = false;
    }

  private:
    void read_subset(const ep::ProcessingRequest &req)
    {
        has_subset_ = false;
        subset_.clear();
        const auto &fm = req.metadata_context().filter_metadata();
        auto it = fm.find(kSubsetNamespace);
        if (it == fm.end())
            return;
        auto f = it->second.fields().find(kSubsetKey);
        if (f == it->second.fields().end())
            return;
        has_subset_ = true; /* present: an empty list means no endpoint */
        const auto &v = f->second;
        if (v.kind_case() == google::protobuf::Value::kListValue) {
            for (const auto &x : v.list_value().values())
                if (x.kind_case() == google::protobuf::Value::kStringValue &&
                    !x.string_value().empty()) {
                    subset_ += x.string_value();
                    subset_.push_back('\0');
                }
        } else if (v.kind_case() == google::protobuf::Value::kStringValue) {
            /* tolerate "a,b" as a single string */
            const std::string &s = v.string_value();
            size_t i = 0;
            while (i <= s.size()) {
                size_t j = s.find(',', i);
                if (j == std::string::npos)
                    j = s.size();
                std::string part = trim(s.substr(i, j - i));
                if (!part.empty()) {
                    subset_ += part;
                    subset_.push_back('\0');
                }
                i = j + 1;
            }
        }
    }

    static std::string trim(const std::string &s)
    {
        size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
        return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
    }

    static std::string first_of(const std::string &list)
    {
        return trim(list.substr(0, list.find(',')));
    }

    std::string served_metadata(const ep::ProcessingRequest &req) const
    {
        const auto &fm = req.metadata_context().filter_metadata();
        auto it = fm.find(kDestNamespace);
        if (it == fm.end())
            return std::string();
        auto f = it->second.fields().find(kServedKey);
        if (f == it->second.fields().end())
            return std::string();
        return first_of(f->second.string_value());
    }

    void end_response()
    {
        if (!complete_) {
            complete_ = true;
            t_end_ = mono_now();
        }
    }

    /* the pick, then its answer: the destination (and the buffered body,
       echoed), or an ImmediateResponse; false when the stream is over */
    template <class W> bool pick_and_answer(W *rw, const std::string *body, bool body_eos)
    {
        char out[4096];
        out[0] = '\0';
        if (cb_.fixed) { /* no picker: the next fixed endpoint, no outcome calls */
            const auto &v = cb_.fixed->endpoints;
            snprintf(out, sizeof out, "%s", v[cb_.fixed->next.fetch_add(1) % v.size()].c_str());
        } else {
            int st = cb_.pick(cb_.user, id_, headers_.data(), headers_.size(),
                              body ? body->data() : nullptr, body ? body->size() : 0,
                              body != nullptr, subset_.data(), subset_.size(), has_subset_, out,
                              sizeof out);
            out[sizeof out - 1] = '\0';
            if (st != 200) {
                rw->Write(immediate(st > 0 ? st : 503, out[0] ? out : "picker error"));
                return false;
            }
            picked_ = true;
        }
        if (!rw->Write(destination(out)))
            return false;
        if (body) {
            std::string b;
            b.swap(body_);
            return write_body(rw, b, body_eos, false);
        }
        return true;
    }

    Dispatcher &d_;
    const Callbacks &cb_;
    uint64_t id_;
    std::string headers_, subset_, body_, tail_;
    bool has_subset_ = false, pending_ = false, picked_ = false, complete_ = false;
    bool seen_first_ = false;
    double t_end_ = 0;
};

class Service final : public ep::ExternalProcessor::Service {
  public:
    explicit Service(Dispatcher &d) : d_(d) {}

    grpc::Status Process(grpc::ServerContext *,
                         grpc::ServerReaderWriter<ep::ProcessingResponse, ep::ProcessingRequest>
                             *rw) override
    {
        Stream st(d_, next_.fetch_add(1) + 1);
        ep::ProcessingRequest req;
        while (rw->Read(&req))
            if (!st.on(req, rw))
                break;
        st.close();
        return grpc::Status::OK;
    }

  private:
    Dispatcher &d_;
    std::atomic<uint64_t> next_{0};
};

struct Server {
    std::unique_ptr<Fixed> fixed;
    std::unique_ptr<Dispatcher> disp;
    std::unique_ptr<Service> svc;
    std::unique_ptr<grpc::Server> server;
    int port = 0;
};

} // namespace

extern "C" {

__attribute__((visibility("default"))) void *
eppf_start(const char *address, size_t tail_bytes, eppf_pick_cb pick, eppf_resp_cb resp,
           eppf_first_cb first, eppf_finish_cb finish, void *user, char *err, size_t errcap)
{
    std::unique_ptr<Server> s(new Server);
    if (!pick && address && user) { /* no picker: round-robin over user's "a,b,..." */
        s->fixed.reset(new Fixed);
        std::string list = static_cast<const char *>(user), cur;
        for (size_t i = 0; i <= list.size(); i++) {
            if (i == list.size() || list[i] == ',') {
                if (!cur.empty())
                    s->fixed->endpoints.push_back(cur);
                cur.clear();
            } else if (list[i] != ' ') {
                cur.push_back(list[i]);
            }
        }
        if (s->fixed->endpoints.empty()) {
            snprintf(err, errcap, "eppf_start: no pick callback and no endpoints");
            return nullptr;
        }
    } else if (!address || !pick || !resp || !first || !finish) {
        snprintf(err, errcap, "eppf_start: NULL argument");
        return nullptr;
    }
    Callbacks cb{s->fixed.get(), pick, resp, first, finish, user, tail_bytes ? tail_bytes : 1};
    s->disp.reset(new Dispatcher(cb));
    s->svc.reset(new Service(*s->disp));
    grpc::ServerBuilder b;
    b.AddListeningPort(address, grpc::InsecureServerCredentials(), &s->port);
    b.RegisterService(s->svc.get());
    b.SetMaxReceiveMessageSize(64 << 20);
    b.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    s->server = b.BuildAndStart();
    if (!s->server || s->port == 0) {
        snprintf(err, errcap, "cannot listen on %s", address);
        return nullptr;
    }
    return s.release();
}

__attribute__((visibility("default"))) int eppf_port(void *srv)
{
    return srv ? static_cast<Server *>(srv)->port : 0;
}

/* wait (at most timeout_ms) until the outcome callbacks of every event so
   far have returned: 1 when they have, 0 on timeout */
__attribute__((visibility("default"))) int eppf_drain(void *srv, int timeout_ms)
{
    if (!srv)
        return 1;
    return static_cast<Server *>(srv)->disp->drain(timeout_ms > 0 ? timeout_ms : 0) ? 1 : 0;
}

/* stop accepting, give open streams grace_ms to end, cancel the rest,
   deliver the queued outcomes; when this returns no callback runs any more */
__attribute__((visibility("default"))) void eppf_stop(void *srv, int grace_ms)
{
    if (!srv)
        return;
    Server *s = static_cast<Server *>(srv);
    s->server->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(grace_ms > 0 ? grace_ms : 0));
    s->server->Wait();
    s->server.reset();
    s->svc.reset();
    s->disp.reset(); /* joins the dispatcher after the queued outcomes */
    delete s;
}
}
