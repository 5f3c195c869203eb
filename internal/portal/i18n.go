package portal

import (
	"strconv"
	"strings"
	"time"

	"github.com/pbxd/pbxd/billing"
)

// Locales the portal speaks; a user's locale picks one, English otherwise.
var locales = map[string]map[string]string{"en": en, "fr": fr}

// tr returns key in lang, falling back to English and then the key itself,
// so a missing translation shows up as readable text, not a blank.
func tr(lang, key string) string {
	if s, ok := locales[lang][key]; ok {
		return s
	}
	if s, ok := en[key]; ok {
		return s
	}
	return key
}

var currencySymbols = map[string]string{"EUR": "€", "USD": "$", "GBP": "£", "CHF": "CHF"}

// money formats minor units per locale: "€1,234.50" in English, "1 234,50 €"
// in French (narrow no-break spaces), by integer arithmetic only.
func money(lang string, minor int64, currency string) string {
	plain := billing.Currency(currency).FormatMinor(minor) // "-1234.50"
	neg := strings.HasPrefix(plain, "-")
	plain = strings.TrimPrefix(plain, "-")
	intPart, frac, _ := strings.Cut(plain, ".")
	sep, dec := ",", "."
	if lang == "fr" {
		sep, dec = "\u202f", ","
	}
	var b strings.Builder
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteString(sep)
		}
		b.WriteRune(r)
	}
	num := b.String()
	if frac != "" {
		num += dec + frac
	}
	sym, ok := currencySymbols[currency]
	if !ok {
		sym = currency
	}
	sign := ""
	if neg {
		sign = "−"
	}
	if lang == "fr" {
		return sign + num + "\u00a0" + sym
	}
	if len(sym) > 2 && sym == currency {
		return sign + sym + "\u00a0" + num
	}
	return sign + sym + num
}

var frMonths = [...]string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"}

// date formats a day in the account's time zone: "16 November 2026" or
// "16 novembre 2026".
func date(lang string, t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "—"
	}
	t = t.In(loc)
	if lang == "fr" {
		day := strconv.Itoa(t.Day())
		if t.Day() == 1 {
			day = "1er" // French writes the first of the month as an ordinal
		}
		return day + " " + frMonths[t.Month()-1] + " " + strconv.Itoa(t.Year())
	}
	return t.Format("2 January 2006")
}

// billingDate formats a billing.Date (a calendar day, no zone).
func billingDate(lang string, d billing.Date) string {
	if d.IsZero() {
		return "—"
	}
	return date(lang, d.Start(time.UTC), time.UTC)
}

var en = map[string]string{
	"app":                  "Customer portal",
	"login.title":          "Sign in",
	"login.email":          "Email",
	"login.password":       "Password",
	"login.submit":         "Sign in",
	"login.failed":         "Wrong email or password.",
	"login.throttled":      "Too many attempts; wait a few minutes and try again.",
	"login.expired":        "Your session has ended; sign in again.",
	"logout":               "Sign out",
	"nav.packages":         "My packages",
	"nav.modify":           "Add/Modify plans",
	"nav.plans":            "Plans",
	"nav.billing":          "Billing & upgrade",
	"nav.account":          "Account summary",
	"nav.invoices":         "Invoices",
	"nav.cards":            "Cards",
	"nav.contact":          "Get in touch",
	"nav.users":            "Users",
	"users.title":          "Users",
	"users.email":          "Email",
	"users.name":           "Name",
	"users.role":           "Role",
	"users.lines":          "Lines (for a member)",
	"users.add":            "Add a user",
	"users.password":       "Initial password (10 characters or more)",
	"users.change_role":    "Change role",
	"users.remove":         "Remove",
	"role.owner":           "Owner",
	"role.admin":           "Administrator",
	"role.member":          "Member",
	"nav.operator":         "Accounts",
	"packages.title":       "My packages",
	"packages.total":       "Total lines",
	"packages.cancel_all":  "Request cancellation of all telephone packages",
	"lines.title":          "Lines",
	"lines.extension":      "Internal number",
	"lines.package":        "Package",
	"lines.domain":         "Domain",
	"lines.password":       "Line password",
	"lines.password.show":  "Hover or focus to reveal",
	"lines.registration":   "Registration",
	"lines.phone":          "Phone",
	"lines.registered":     "Registered",
	"lines.unregistered":   "Not registered",
	"lines.none":           "No lines yet.",
	"modify.title":         "Add/Modify plans",
	"modify.current":       "Current configuration",
	"modify.new":           "New configuration",
	"modify.lines":         "Existing lines",
	"modify.plan":          "Plan",
	"modify.delete":        "Delete",
	"modify.add":           "Add packages / lines",
	"modify.count":         "Lines to add",
	"modify.base_price":    "Price per line per month",
	"modify.continue":      "Continue",
	"summary.title":        "Summary before confirmation",
	"summary.from_to":      "from %d to %d",
	"summary.amount":       "Amount",
	"summary.net":          "Amount before tax",
	"summary.tax":          "Tax",
	"summary.gross":        "Amount after tax",
	"summary.credit":       "Credit for the next bill",
	"summary.payment":      "Payment method",
	"summary.invoice_mode": "Added to your next invoice",
	"summary.prorated":     "prorated from the order day to the end of the month: %s instead of %s",
	"summary.confirm":      "Confirm",
	"summary.pay_with":     "Pay with",
	"summary.use_card":     "Use this card",
	"summary.back":         "Change the order",
	"summary.conflict":     "Your account changed since this summary was made (%s). Here is a fresh summary: check it and confirm again.",
	"summary.done":         "This change has been confirmed.",
	"confirmed":            "Your change is confirmed.",
	"confirmed.invoice":    "See the invoice",
	"invoices.title":       "Invoices",
	"invoices.number":      "Number",
	"invoices.date":        "Date",
	"invoices.due":         "Due",
	"invoices.status":      "Status",
	"invoices.total":       "Total",
	"invoices.none":        "No invoices yet.",
	"invoices.pdf":         "Download PDF",
	"invoice.title":        "Invoice",
	"invoice.issuer":       "Issuer",
	"invoice.customer":     "Billing address",
	"invoice.issued":       "Issue date",
	"invoice.description":  "Product",
	"invoice.qty":          "Qty",
	"invoice.unit":         "Unit price",
	"invoice.period":       "Period",
	"invoice.amount":       "Amount",
	"invoice.vat":          "VAT %s %%",
	"invoice.transaction":  "Transaction",
	"status.paid":          "Paid",
	"status.open":          "Open",
	"status.void":          "Void",
	"status.active":        "Active",
	"status.trial":         "Try",
	"status.inactive":      "Inactive",
	"account.title":        "Account summary",
	"account.plan":         "You are on the %s plan for %s per line per month, billed %s. You are paying a total of %s per month for %d lines.",
	"account.subscription": "Subscription",
	"account.prepaid":      "Prepaid",
	"account.used":         "Used",
	"account.available":    "Available",
	"account.preferences":  "Preferences",
	"account.save":         "Save",
	"account.seat_pref":    "When a new line is needed and no seat is free",
	"seat.auto_purchase":   "buy one, prorated",
	"seat.block":           "refuse",
	"account.payment":      "Payment method",
	"account.no_payment":   "No payment method on file.",
	"account.price_seat":   "Price per seat",
	"account.interval":     "Billing interval",
	"account.renewal":      "Renewal date",
	"account.change_pm":    "Change payment method",
	"account.history":      "View billing history",
	"account.next":         "Next payment",
	"account.credit":       "Credit for the next bill",
	"cycle.monthly":        "monthly",
	"cycle.annual":         "annually",
	"cards.title":          "Cards",
	"cards.default":        "Used for recurring billing",
	"cards.make_default":   "Make default",
	"cards.remove":         "Remove",
	"cards.add":            "Add a card",
	"cards.label":          "Card (brand, last 4 digits, expiry)",
	"cards.token":          "Payment gateway token",
	"cards.none":           "No cards yet.",
	"plans.title":          "Plans",
	"plans.on_offer":       "Packages on offer",
	"plans.lines":          "Your lines",
	"plans.price":          "Price",
	"plans.cycle":          "Billing cycle",
	"plans.status":         "Status",
	"plans.next":           "Next payment",
	"plans.from":           "Registered from",
	"plans.upgrade":        "Upgrade plan",
	"plans.unsubscribe":    "Unsubscribe",
	"plans.choose_cycle":   "Billing cycle",
	"plans.discount":       "%s %% off",
	"plans.per_account":    "Price per account",
	"plans.quantity":       "Quantity",
	"plans.total":          "Total = Price × Quantity",
	"plans.next_btn":       "Next",
	"plans.per_month":      "per month",
	"modify.nothing":       "Nothing to change: tick a line to delete, pick another plan or add lines.",
	"billing.title":        "Billing & upgrade",
	"billing.seats":        "Seats",
	"billing.fewer":        "One seat less",
	"billing.more":         "One seat more",
	"billing.today":        "Charged today (prorated)",
	"billing.future":       "Then, full price per period",
	"billing.level":        "Move these lines up to",
	"billing.review":       "Review purchase",
	"billing.upgrade":      "Upgrade",
	"billing.addons":       "Available add-ons",
	"billing.add_to_plan":  "Add to plan",
	"billing.downgrade":    "Downgrade, add-on removal or product change: get in touch",
	"contact.title":        "Get in touch",
	"contact.kind":         "What is it about?",
	"contact.details":      "Details",
	"contact.send":         "Send",
	"contact.sent":         "Thank you: your request is recorded and our team will get back to you.",
	"kind.cancel_all":      "Cancel all telephone packages",
	"kind.downgrade":       "Downgrade",
	"kind.remove_addon":    "Remove an add-on",
	"kind.remove_number":   "Remove a number",
	"kind.port_in":         "Bring a number to us (port in)",
	"kind.port_out":        "Take a number away (port out)",
	"kind.change_owner":    "Change the account's owner",
	"kind.other":           "Something else",
	"forbidden":            "Only the account's owner or an administrator can do this.",
	"notfound":             "Not found.",
	"error":                "Something went wrong; please try again.",
	"csrf":                 "This form has expired; please try again.",
	"language":             "Language",
	"op.title":             "Operator sign-in",
	"op.token":             "Operator token",
	"op.accounts":          "Accounts",
	"op.search":            "Search",
	"op.name":              "Name",
	"op.domain":            "SIP domain",
	"op.status":            "Status",
	"op.open":              "Open",
	"op.suspend":           "Suspend the account",
	"op.resume":            "Resume the account",
	"account.suspended":    "This account is suspended: its lines are off and changes are refused.",
}

var fr = map[string]string{
	"app":                  "Espace client",
	"login.title":          "Connexion",
	"login.email":          "E-mail",
	"login.password":       "Mot de passe",
	"login.submit":         "Se connecter",
	"login.failed":         "E-mail ou mot de passe incorrect.",
	"login.throttled":      "Trop de tentatives ; patientez quelques minutes puis réessayez.",
	"login.expired":        "Votre session a expiré ; reconnectez-vous.",
	"logout":               "Se déconnecter",
	"nav.packages":         "Mes forfaits",
	"nav.modify":           "Ajouter/Modifier des forfaits",
	"nav.plans":            "Offres",
	"nav.billing":          "Facturation et évolution",
	"nav.account":          "Résumé du compte",
	"nav.invoices":         "Factures",
	"nav.cards":            "Cartes",
	"nav.contact":          "Nous contacter",
	"nav.users":            "Utilisateurs",
	"users.title":          "Utilisateurs",
	"users.email":          "E-mail",
	"users.name":           "Nom",
	"users.role":           "Rôle",
	"users.lines":          "Lignes (pour un membre)",
	"users.add":            "Ajouter un utilisateur",
	"users.password":       "Mot de passe initial (10 caractères ou plus)",
	"users.change_role":    "Changer de rôle",
	"users.remove":         "Retirer",
	"role.owner":           "Titulaire",
	"role.admin":           "Administrateur",
	"role.member":          "Membre",
	"nav.operator":         "Comptes",
	"packages.title":       "Mes forfaits",
	"packages.total":       "Nombre total de lignes",
	"packages.cancel_all":  "Demander la résiliation de tous les forfaits téléphoniques",
	"lines.title":          "Lignes",
	"lines.extension":      "Numéro interne",
	"lines.package":        "Forfait",
	"lines.domain":         "Domaine",
	"lines.password":       "Mot de passe de la ligne",
	"lines.password.show":  "Survolez ou sélectionnez pour afficher",
	"lines.registration":   "Enregistrement",
	"lines.phone":          "Téléphone",
	"lines.registered":     "Enregistrée",
	"lines.unregistered":   "Non enregistrée",
	"lines.none":           "Aucune ligne pour l’instant.",
	"modify.title":         "Ajouter/Modifier des forfaits",
	"modify.current":       "Configuration actuelle",
	"modify.new":           "Nouvelle configuration",
	"modify.lines":         "Lignes existantes",
	"modify.plan":          "Forfait",
	"modify.delete":        "Supprimer",
	"modify.add":           "Ajouter des forfaits / lignes",
	"modify.count":         "Lignes à ajouter",
	"modify.base_price":    "Prix par ligne et par mois",
	"modify.continue":      "Continuer",
	"summary.title":        "Récapitulatif avant confirmation",
	"summary.from_to":      "de %d à %d",
	"summary.amount":       "Montant",
	"summary.net":          "Montant HT",
	"summary.tax":          "TVA",
	"summary.gross":        "Montant TTC",
	"summary.credit":       "Avoir sur la prochaine facture",
	"summary.payment":      "Moyen de paiement",
	"summary.invoice_mode": "Ajouté à votre prochaine facture",
	"summary.prorated":     "au prorata du jour de la commande à la fin du mois : %s au lieu de %s",
	"summary.confirm":      "Confirmer",
	"summary.pay_with":     "Payer avec",
	"summary.use_card":     "Utiliser cette carte",
	"summary.back":         "Modifier la commande",
	"summary.conflict":     "Votre compte a changé depuis ce récapitulatif (%s). Voici un récapitulatif à jour : vérifiez-le et confirmez à nouveau.",
	"summary.done":         "Cette modification a été confirmée.",
	"confirmed":            "Votre modification est confirmée.",
	"confirmed.invoice":    "Voir la facture",
	"invoices.title":       "Factures",
	"invoices.number":      "Numéro",
	"invoices.date":        "Date",
	"invoices.due":         "Échéance",
	"invoices.status":      "État",
	"invoices.total":       "Total",
	"invoices.none":        "Aucune facture pour l’instant.",
	"invoices.pdf":         "Télécharger le PDF",
	"invoice.title":        "Facture",
	"invoice.issuer":       "Émetteur",
	"invoice.customer":     "Adresse de facturation",
	"invoice.issued":       "Date d’émission",
	"invoice.description":  "Produit",
	"invoice.qty":          "Qté",
	"invoice.unit":         "Prix unitaire",
	"invoice.period":       "Période",
	"invoice.amount":       "Montant",
	"invoice.vat":          "TVA %s %%",
	"invoice.transaction":  "Transaction",
	"status.paid":          "Payée",
	"status.open":          "À payer",
	"status.void":          "Annulée",
	"status.active":        "Actif",
	"status.trial":         "Essai",
	"status.inactive":      "Inactif",
	"account.title":        "Résumé du compte",
	"account.plan":         "Vous avez l’offre %s à %s par ligne et par mois, facturée %s. Vous payez au total %s par mois pour %d lignes.",
	"account.subscription": "Abonnement",
	"account.prepaid":      "Prépayées",
	"account.used":         "Utilisées",
	"account.available":    "Disponibles",
	"account.preferences":  "Préférences",
	"account.save":         "Enregistrer",
	"account.seat_pref":    "Quand une ligne est nécessaire et qu’aucune place n’est libre",
	"seat.auto_purchase":   "en acheter une, au prorata",
	"seat.block":           "refuser",
	"account.payment":      "Moyen de paiement",
	"account.no_payment":   "Aucun moyen de paiement enregistré.",
	"account.price_seat":   "Prix par place",
	"account.interval":     "Périodicité",
	"account.renewal":      "Date de renouvellement",
	"account.change_pm":    "Changer de moyen de paiement",
	"account.history":      "Voir l’historique de facturation",
	"account.next":         "Prochain paiement",
	"account.credit":       "Avoir sur la prochaine facture",
	"cycle.monthly":        "mensuellement",
	"cycle.annual":         "annuellement",
	"cards.title":          "Cartes",
	"cards.default":        "Utilisée pour les paiements récurrents",
	"cards.make_default":   "Utiliser par défaut",
	"cards.remove":         "Retirer",
	"cards.add":            "Ajouter une carte",
	"cards.label":          "Carte (marque, 4 derniers chiffres, expiration)",
	"cards.token":          "Jeton de la passerelle de paiement",
	"cards.none":           "Aucune carte pour l’instant.",
	"plans.title":          "Offres",
	"plans.on_offer":       "Forfaits proposés",
	"plans.lines":          "Vos lignes",
	"plans.price":          "Prix",
	"plans.cycle":          "Périodicité",
	"plans.status":         "État",
	"plans.next":           "Prochain paiement",
	"plans.from":           "Inscrit depuis",
	"plans.upgrade":        "Faire évoluer",
	"plans.unsubscribe":    "Se désabonner",
	"plans.choose_cycle":   "Périodicité",
	"plans.discount":       "%s %% de remise",
	"plans.per_account":    "Prix par compte",
	"plans.quantity":       "Quantité",
	"plans.total":          "Total = Prix × Quantité",
	"plans.next_btn":       "Suivant",
	"plans.per_month":      "par mois",
	"modify.nothing":       "Rien à modifier : cochez une ligne à supprimer, choisissez un autre forfait ou ajoutez des lignes.",
	"billing.title":        "Facturation et évolution",
	"billing.seats":        "Places",
	"billing.fewer":        "Une place de moins",
	"billing.more":         "Une place de plus",
	"billing.today":        "Payé aujourd’hui (au prorata)",
	"billing.future":       "Ensuite, plein tarif par période",
	"billing.level":        "Faire passer ces lignes à",
	"billing.review":       "Vérifier l’achat",
	"billing.upgrade":      "Faire évoluer",
	"billing.addons":       "Options disponibles",
	"billing.add_to_plan":  "Ajouter à l’offre",
	"billing.downgrade":    "Réduction, retrait d’option ou changement de produit : contactez-nous",
	"contact.title":        "Nous contacter",
	"contact.kind":         "Votre demande concerne",
	"contact.details":      "Détails",
	"contact.send":         "Envoyer",
	"contact.sent":         "Merci : votre demande est enregistrée et notre équipe vous répondra.",
	"kind.cancel_all":      "Résilier tous les forfaits téléphoniques",
	"kind.downgrade":       "Réduire l’offre",
	"kind.remove_addon":    "Retirer une option",
	"kind.remove_number":   "Retirer un numéro",
	"kind.port_in":         "Porter un numéro chez nous",
	"kind.port_out":        "Porter un numéro ailleurs",
	"kind.change_owner":    "Changer de titulaire",
	"kind.other":           "Autre chose",
	"forbidden":            "Seuls le titulaire du compte ou un administrateur peuvent faire cela.",
	"notfound":             "Introuvable.",
	"error":                "Une erreur est survenue ; réessayez.",
	"csrf":                 "Ce formulaire a expiré ; réessayez.",
	"language":             "Langue",
	"op.title":             "Connexion opérateur",
	"op.token":             "Jeton opérateur",
	"op.accounts":          "Comptes",
	"op.search":            "Rechercher",
	"op.name":              "Nom",
	"op.domain":            "Domaine SIP",
	"op.status":            "État",
	"op.open":              "Ouvrir",
	"op.suspend":           "Suspendre le compte",
	"op.resume":            "Réactiver le compte",
	"account.suspended":    "Ce compte est suspendu : ses lignes sont coupées et les modifications refusées.",
}
