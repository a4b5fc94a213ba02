package sim

import (
	"cmp"
	"slices"
)

// model is the whole simulated shop.
type model struct {
	services []*service
	peers    []*peer
	ops      []*op // every operation, internal ones included
	insts    []*instance
	roots    []root
	weights  float64 // sum of root weights
	job      *op     // the batch job's root operation, or nil
}

// root is a user-facing entry point and its share of the traffic.
type root struct {
	op     *op
	weight float64
}

// newShop builds the shop: an Online-Boutique-like set of services, a Redis
// cart cache, a PostgreSQL catalog database, a Kafka queue of orders with an
// instrumented consumer, and an external payment API; with job, also the
// batch job, after everything else so the rest of the shop is unchanged.
// Latency medians are self times (time not spent waiting on calls); leaf
// calls are whole calls.
func newShop(seed int64, job bool) *model {
	m := &model{}

	redis := m.peer("redis-cart", "redis", 6379)
	catalogDB := m.peer("catalog-db", "postgresql", 5432)
	payAPI := m.peer("api.payments.example", "http", 443)

	cur := m.service("currencyservice", "nodejs", 7000, 3)
	currencies := cur.grpc("hipstershop.CurrencyService", "GetSupportedCurrencies", ms(0.35, 0.5))
	convert := cur.grpc("hipstershop.CurrencyService", "Convert", ms(0.45, 0.5))

	cat := m.service("productcatalogservice", "go", 3550, 3)
	listProducts := cat.grpc("hipstershop.ProductCatalogService", "ListProducts", ms(0.6, 0.5),
		seq(sqlCall(catalogDB, "catalog", "products",
			"SELECT id, name, description, picture, price_usd, categories FROM products", ms(3.2, 0.5))))
	getProduct := cat.grpc("hipstershop.ProductCatalogService", "GetProduct", ms(0.3, 0.5),
		seq(sqlCall(catalogDB, "catalog", "products",
			"SELECT id, name, description, picture, price_usd, categories FROM products WHERE id = $1", ms(1.6, 0.5))))

	cart := m.service("cartservice", "dotnet", 7070, 2)
	getCart := cart.grpc("hipstershop.CartService", "GetCart", ms(0.5, 0.5),
		seq(redisCall(redis, "HGET", ms(0.3, 0.4))))
	addItem := cart.grpc("hipstershop.CartService", "AddItem", ms(0.6, 0.5),
		seq(redisCall(redis, "HGET", ms(0.3, 0.4))),
		seq(redisCall(redis, "HSET", ms(0.35, 0.4))))
	emptyCart := cart.grpc("hipstershop.CartService", "EmptyCart", ms(0.4, 0.5),
		seq(redisCall(redis, "DEL", ms(0.3, 0.4))))

	rec := m.service("recommendationservice", "python", 8080, 2)
	recommend := rec.grpc("hipstershop.RecommendationService", "ListRecommendations", ms(2.5, 0.6),
		seq(rpc(listProducts)))

	ship := m.service("shippingservice", "go", 50051, 2)
	quote := ship.grpc("hipstershop.ShippingService", "GetQuote", ms(0.4, 0.5))
	shipOrder := ship.grpc("hipstershop.ShippingService", "ShipOrder", ms(0.8, 0.5))

	ad := m.service("adservice", "java", 9555, 1)
	getAds := ad.grpc("hipstershop.AdService", "GetAds", ms(1.2, 0.7))

	pay := m.service("paymentservice", "nodejs", 50051, 2)
	validate := pay.internal("validateCard", ms(0.3, 0.4))
	charge := pay.grpc("hipstershop.PaymentService", "Charge", ms(0.8, 0.5),
		seq(local(validate)),
		seq(httpCall(payAPI, "POST", "https://api.payments.example/v1/charges", ms(24, 0.5), 0.002)))

	email := m.service("emailservice", "python", 8080, 1)
	confirm := email.grpc("hipstershop.EmailService", "SendOrderConfirmation", ms(6, 0.6))

	ful := m.service("fulfillmentservice", "go", 8080, 2)
	allocate := ful.internal("allocateWarehouse", ms(1.5, 0.6))
	processOrder := ful.consumer("orders", "fulfillment", ms(3, 0.6),
		seq(local(allocate)))

	co := m.service("checkoutservice", "go", 5050, 2)
	prepare := co.internal("prepareOrderItemsAndShippingQuoteFromCart", ms(0.3, 0.5),
		seq(rpc(getCart)),
		loop(1, 3, rpc(getProduct), rpc(convert)),
		seq(rpc(quote)),
		seq(rpc(convert)))
	placeOrder := co.grpc("hipstershop.CheckoutService", "PlaceOrder", ms(1.5, 0.5),
		seq(local(prepare)),
		seq(rpc(charge)),
		seq(rpc(shipOrder)),
		seq(rpc(emptyCart)),
		seq(optional(rpc(confirm))),
		seq(publish(processOrder, ms(1.1, 0.6))))

	fe := m.service("frontend", "go", 8080, 3)
	home := fe.http("GET", "/", ms(2.5, 0.5),
		seq(rpc(currencies)),
		seq(rpc(listProducts)),
		seq(rpc(getCart)),
		loop(4, 9, rpc(convert)),
		seq(optional(rpc(getAds))))
	product := fe.http("GET", "/product/{id}", ms(2, 0.5),
		seq(rpc(getProduct)),
		seq(rpc(currencies)),
		seq(rpc(getCart)),
		seq(rpc(convert)),
		par(optional(rpc(recommend)), optional(rpc(getAds))))
	setCurrency := fe.http("POST", "/setCurrency", ms(0.4, 0.5))
	addToCart := fe.http("POST", "/cart", ms(1.2, 0.5),
		seq(rpc(getProduct)),
		seq(rpc(addItem)))
	viewCart := fe.http("GET", "/cart", ms(2.2, 0.5),
		seq(rpc(currencies)),
		seq(rpc(getCart)),
		seq(optional(rpc(recommend))),
		seq(rpc(quote)),
		loop(1, 3, rpc(getProduct), rpc(convert)),
		seq(rpc(convert)))
	checkout := fe.http("POST", "/cart/checkout", ms(2.5, 0.5),
		seq(rpc(placeOrder)),
		seq(optional(rpc(recommend))),
		seq(rpc(currencies)))

	// Traffic mix of the Online Boutique load generator.
	m.root(home, 1)
	m.root(setCurrency, 2)
	m.root(product, 10)
	m.root(addToCart, 2)
	m.root(viewCart, 3)
	m.root(checkout, 1)

	if job {
		bj := m.service("batchjob", "go", 8080, 1)
		m.job = bj.internal("reindex", ms(2, 0.5), seq(rpc(listProducts)))
		cat.jobPath, catalogDB.jobPath = true, true
	}

	m.finish(seed)
	return m
}

func (m *model) peer(name, system string, port int64) *peer {
	p := &peer{name: name, system: system, port: port}
	m.peers = append(m.peers, p)
	return p
}

func (m *model) service(name, lang string, port int64, instances int) *service {
	s := &service{name: name, lang: lang, version: "1.10.0", port: port, nInst: instances}
	for i := range s.scopeIdx {
		s.scopeIdx[i] = -1
	}
	m.services = append(m.services, s)
	return s
}

func (m *model) root(o *op, weight float64) {
	m.roots = append(m.roots, root{op: o, weight: weight})
	m.weights += weight
}

// addOp adds o with its body to s. Operations other than internal ones are
// callable from outside and get a small background failure rate.
func addOp(s *service, o *op, steps []step) *op {
	o.svc = s
	o.steps = steps
	if o.kind != opInternal {
		o.errRate = 0.0002
		s.ops = append(s.ops, o)
	}
	return o
}

// grpc adds a gRPC operation to s.
func (s *service) grpc(rpcService, method string, self lognormal, steps ...step) *op {
	return addOp(s, &op{kind: opGRPC, name: rpcService + "/" + method, method: method,
		rpcSvc: rpcService, self: self}, steps)
}

// http adds an HTTP route to s.
func (s *service) http(verb, route string, self lognormal, steps ...step) *op {
	return addOp(s, &op{kind: opHTTP, name: verb + " " + route, verb: verb, route: route,
		self: self}, steps)
}

// consumer adds a message consumer of dest to s.
func (s *service) consumer(dest, group string, self lognormal, steps ...step) *op {
	return addOp(s, &op{kind: opConsumer, name: "process " + dest, dest: dest, group: group,
		self: self}, steps)
}

// internal adds an in-process operation (an internal span) to s.
func (s *service) internal(name string, self lognormal, steps ...step) *op {
	return addOp(s, &op{kind: opInternal, name: name, self: self}, steps)
}

func seq(calls ...*call) step { return step{calls: calls} }
func par(calls ...*call) step { return step{calls: calls, parallel: true} }
func loop(lo, hi int, calls ...*call) step {
	return step{calls: calls, min: lo, max: hi}
}

func rpc(o *op) *call        { return &call{kind: callRPC, to: o} }
func local(o *op) *call      { return &call{kind: callLocal, to: o} }
func optional(c *call) *call { c.optional = true; return c }
func publish(consumer *op, send lognormal) *call {
	return &call{kind: callQueue, to: consumer, leaf: leafSpec{lat: send}}
}

func sqlCall(p *peer, namespace, table, query string, lat lognormal) *call {
	return &call{kind: callLeaf, peer: p, leaf: leafSpec{
		name: "SELECT " + table, lat: lat, errRate: 0.0002, in: instrSQL,
		attrs: []attr{
			strAttr("db.system", p.system),
			strAttr("db.namespace", namespace),
			strAttr("db.operation.name", "SELECT"),
			strAttr("db.collection.name", table),
			strAttr("db.query.text", query),
			strAttr("server.address", p.name),
			numAttr("server.port", p.port),
		}}}
}

func redisCall(p *peer, command string, lat lognormal) *call {
	return &call{kind: callLeaf, peer: p, leaf: leafSpec{
		name: command, lat: lat, errRate: 0.0001, in: instrRedis,
		attrs: []attr{
			strAttr("db.system", p.system),
			strAttr("db.operation.name", command),
			strAttr("server.address", p.name),
			numAttr("server.port", p.port),
		}}}
}

func httpCall(p *peer, verb, url string, lat lognormal, errRate float64) *call {
	return &call{kind: callLeaf, peer: p, leaf: leafSpec{
		name: verb, lat: lat, errRate: errRate, in: instrHTTP, http: true,
		attrs: []attr{
			strAttr("http.request.method", verb),
			strAttr("server.address", p.name),
			numAttr("server.port", p.port),
			strAttr("url.full", url),
		}}}
}

// finish walks the model from its roots, records every operation, sets call
// origins, builds instances and templates.
func (m *model) finish(seed int64) {
	seen := map[*op]bool{}
	var walk func(o *op)
	walk = func(o *op) {
		if seen[o] {
			return
		}
		seen[o] = true
		m.ops = append(m.ops, o)
		for i := range o.steps {
			for _, c := range o.steps[i].calls {
				c.from = o.svc
				if c.to != nil {
					walk(c.to)
				}
			}
		}
	}
	for _, r := range m.roots {
		walk(r.op)
	}
	if m.job != nil {
		walk(m.job)
	}
	for si, s := range m.services {
		r := newRNG(seed, streamInstances+uint64(si))
		podHash := podSuffix(&r, 9)
		for range s.nInst {
			inst := &instance{svc: s, idx: len(m.insts)}
			inst.res, inst.resEnc = resource(s, podHash, &r)
			s.insts = append(s.insts, inst)
			m.insts = append(m.insts, inst)
		}
	}
	for _, o := range m.ops {
		for out := range nOutcomes {
			o.tmpl[out] = opTmpl(o, out)
		}
		for i := range o.steps {
			for _, c := range o.steps[i].calls {
				if c.kind == callLocal {
					continue
				}
				for out := range nOutcomes {
					c.tmpl[out] = callTmpl(c, out)
				}
			}
		}
	}
}

// groups bounds groupKey.
func (m *model) groups() int { return len(m.insts) << scopeBits }

// serviceNamed returns the service called name, or nil.
func (m *model) serviceNamed(name string) *service {
	for _, s := range m.services {
		if s.name == name {
			return s
		}
	}
	return nil
}

// peerNamed returns the peer called name, or nil.
func (m *model) peerNamed(name string) *peer {
	for _, p := range m.peers {
		if p.name == name {
			return p
		}
	}
	return nil
}

// calls calls fn for every call site in the model.
func (m *model) calls(fn func(c *call)) {
	for _, o := range m.ops {
		for i := range o.steps {
			for _, c := range o.steps[i].calls {
				fn(c)
			}
		}
	}
}

// Service describes one simulated service.
type Service struct {
	Name       string   // service.name
	Language   string   // telemetry.sdk.language
	Instances  int      // running instances, each its own resource (service.instance.id)
	Operations []string // span names of its server and consumer spans
}

// Edge is one dependency of the shop, as a detector should find it.
type Edge struct {
	// From is the calling service.
	From string
	// To is the called service, or the server.address of an uninstrumented
	// database, cache or external host.
	To string
	// Via is how the call travels: "grpc"; "http" to the external host;
	// "redis" or "postgresql" (the db.system); "kafka" for the queue, where
	// the caller's producer span is the parent of the callee's consumer span.
	Via string
}

// Services describes the simulated services in a fixed order. The topology
// does not depend on the configuration, so it is a plain function; the one
// exception is Config.Batch, which adds the service batchjob (Go, one
// instance, root spans "reindex" of kind internal), not listed here.
func Services() []Service {
	m := newShop(0, false)
	out := make([]Service, 0, len(m.services))
	for _, s := range m.services {
		d := Service{Name: s.name, Language: s.lang, Instances: s.nInst}
		for _, o := range s.ops {
			d.Operations = append(d.Operations, o.name)
		}
		out = append(out, d)
	}
	return out
}

// Edges lists every dependency of the shop, sorted by From, To, Via.
// Config.Batch adds {batchjob, productcatalogservice, grpc}, not listed here.
func Edges() []Edge {
	m := newShop(0, false)
	var out []Edge
	m.calls(func(c *call) {
		switch c.kind {
		case callRPC:
			out = append(out, Edge{From: c.from.name, To: c.to.svc.name, Via: "grpc"})
		case callQueue:
			out = append(out, Edge{From: c.from.name, To: c.to.svc.name, Via: "kafka"})
		case callLeaf:
			out = append(out, Edge{From: c.from.name, To: c.peer.name, Via: c.peer.system})
		}
	})
	slices.SortFunc(out, func(a, b Edge) int {
		return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To), cmp.Compare(a.Via, b.Via))
	})
	return slices.Compact(out)
}
